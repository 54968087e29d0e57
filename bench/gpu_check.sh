#!/usr/bin/env bash
# The GPU checks of issue 15, for a lent GPU machine (an H200: about 7 minutes; budget 8).
#
#   bench/gpu_check.sh prepare     here, once: copy the shared media the checks need into
#                                  .gpu-media/ (ignored through .git/info/exclude) to carry
#   bench/gpu_check.sh [OUT]       there: every check, each bounded by what is left of the
#                                  budget, writing everything under OUT (default $OUT)
#
# Carry .gpu-media (and .whl, wheels of this project's packages that the machine's python3
# lacks, installed into /tmp/site first: see /work/.library/device/README.md). Python: PY, else
# .venv/bin/python where it runs, else python3. Checks, in order of what they are for:
#   1. env.txt: the device, the python, the project's imports (stops here if one is missing)
#   2. tests/gpu (make gpu's tests): gpu-tests.txt
#   3. the encoder and decoder on the GPU (encoder.json): output.encoder = auto picks
#      h264_nvenc; th10's first 11 s (1080x1920) encoded by libx264 (crf 18, medium) and by
#      NVENC at the mapped settings (cq = crf, and crf -4, -2, +2 to place the mapping),
#      each file's bitrate and PSNR against the decoded source (target: NVENC within 1 dB of
#      libx264 at a similar bitrate), encode seconds; hevc_cuvid decoding th10 against software
#      (seconds, largest difference)
#   4. seconds per minute of 1080p output (bench_speed.py --part minute --device cuda): th10 +
#      en02 (60 s), cold and warm `heygemd once`, builtin and wav2lip: minute.json
#   5. the engine's CPU work over the machine's cores (bench_cores.py: the template analysis in
#      one pass against 2, 4, 8 segments at once, the render with 1 against 2, 4, 8 transplant
#      threads, th10 and c01): cores.json
#   6. bench/compare_devices.py --clips th08 th05 (the rest of make gpu), if time is left
set -u
cd "$(dirname "$0")/.."

if [ "${1:-}" = prepare ]; then
    mkdir -p .git/info .gpu-media/talking .gpu-media/speech
    grep -qx '/.gpu-media/' .git/info/exclude 2>/dev/null || echo '/.gpu-media/' >> .git/info/exclude
    m=../shared/media
    cp "$m/MANIFEST.md" .gpu-media/
    cp "$m"/talking/th0[58]_*.mp4 "$m"/talking/th10_*.mp4 .gpu-media/talking/
    cp "$m"/speech/en0[12]_* "$m"/speech/zh01_* .gpu-media/speech/
    mkdir -p .gpu-media/corpus && cp "$m"/corpus/c01_*.mp4 .gpu-media/corpus/
    du -sh .gpu-media
    exit 0
fi

OUTDIR=${1:-${OUT:?give OUT or a folder}}
mkdir -p "$OUTDIR"
START=$(date +%s)
BUDGET=${BUDGET:-460}  # seconds for all the checks; the machine's start is not counted here
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# the media, where the code looks for it: ../shared/media
if [ ! -f ../shared/media/MANIFEST.md ] && [ -d .gpu-media ]; then
    mkdir -p ../shared && ln -sfn "$PWD/.gpu-media" ../shared/media
fi
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [ -z "${PY:-}" ]; then
    if .venv/bin/python -c 'import torch' 2> /dev/null; then PY=.venv/bin/python; else PY=python3; fi
fi

# 1. the machine and the project's imports
{
    date -u; nproc; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
    echo "python: $PY"
    "$PY" - <<'EOF'
import importlib, sys
missing = []
for name in ("torch", "av", "numpy", "structlog", "pydantic_settings", "mediapipe", "cv2",
             "silero_vad", "pocketsphinx", "watchdog", "heygemd.cli"):
    try:
        importlib.import_module(name)
    except Exception as err:  # any failure to import is what this line is for
        missing.append(f"{name}: {type(err).__name__}: {err}")
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
try:
    import av
    print("av", av.__version__, sorted(av.codecs_available & {"h264_nvenc", "hevc_nvenc",
                                                               "h264_cuvid", "hevc_cuvid"}))
except ImportError:
    pass
print("MISSING" if missing else "imports: all", *missing, sep="\n  ")
sys.exit(1 if missing or not torch.cuda.is_available() else 0)
EOF
} > "$OUTDIR/env.txt" 2>&1
status=$?
cat "$OUTDIR/env.txt"
if [ $status -ne 0 ]; then
    echo "gpu_check: the environment is not ready (env.txt); nothing else was run"
    exit 1
fi

# 2. the GPU tests
timeout $(( $(left) > 120 ? 120 : $(left) )) "$PY" -m pytest -q -p no:cacheprovider -m gpu \
    tests/gpu > "$OUTDIR/gpu-tests.txt" 2>&1
echo "gpu tests: exit $? ($(tail -1 "$OUTDIR/gpu-tests.txt"))"

# 3. the encoder and the decoder
timeout $(( $(left) > 150 ? 150 : $(left) )) "$PY" - "$OUTDIR/encoder.json" <<'EOF' \
    > "$OUTDIR/encoder.txt" 2>&1
import json, math, sys, time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from heygemd.media import hardware
from heygemd.media.encoder import encoder_for
from heygemd.media.video import VideoReader
from heygemd.media.writer import VideoWriter
from heygemd.settings import load_settings

media = Path("../shared/media")
th10 = next((media / "talking").glob("th10_*.mp4"))
cfg = load_settings(Path("config.toml")).output
out = Path("/tmp/gpu-check-enc")
out.mkdir(exist_ok=True)
result: dict = {"output": cfg.model_dump()}

def save() -> None:
    Path(sys.argv[1]).write_text(json.dumps(result, indent=2))

def decode(path, software: bool, limit: int):
    if software:
        hardware._unavailable["hevc_cuvid"] = "software asked for by the check"
    else:
        hardware._unavailable.pop("hevc_cuvid", None)
    t0 = time.perf_counter()
    with VideoReader(path) as reader:
        name, frames = reader.decoder, []
        for frame in reader:
            frames.append(frame.copy())
            if len(frames) == limit:
                break
    return name, frames, time.perf_counter() - t0

auto = encoder_for("auto", cfg.crf, cfg.preset, 1080, 1920, Fraction(25))
result["auto_choice"] = auto.summary()
hw_name, hw, hw_s = decode(th10, False, 275)
sw_name, sw, sw_s = decode(th10, True, 275)
diff = max(int(np.abs(a.astype(np.int16) - b).max()) for a, b in zip(hw, sw))
result["decode"] = {"hardware": hw_name, "hardware_s": round(hw_s, 2), "software": sw_name,
                    "software_s": round(sw_s, 2), "frames": len(sw), "largest_difference": diff}
save()
seconds = len(sw) / 25

def psnr(path) -> float:
    mse, n = 0.0, 0
    with av.open(str(path)) as container:
        for frame, source in zip(container.decode(video=0), sw):
            d = frame.to_ndarray(format="rgb24").astype(np.float64) - source
            mse, n = mse + float(np.mean(d * d)), n + 1
    return round(10 * math.log10(255 ** 2 / (mse / n)), 2)

def encode(name: str, settings, options=None):
    path = out / f"{name}.mp4"
    t0 = time.perf_counter()
    with VideoWriter(path, 1080, 1920, 25.0, audio=None, audio_rate=48000,
                     settings=settings) as writer:
        used = {**writer.encoder.options, **(options or {})}
        if options is not None:  # the cq sweep: the writer's choice with cq changed
            writer._video.options = used  # set before the first frame opens the encoder
        for frame in sw:
            writer.write(frame)
    took = time.perf_counter() - t0
    row = {"encoder": writer.encoder.codec, "options": used,
           "encode_s": round(took, 2), "kbps": round(path.stat().st_size * 8 / seconds / 1000),
           "psnr_db": psnr(path)}
    print(name, row, flush=True)
    result.setdefault("encodes", {})[name] = row
    save()

encode("libx264", cfg.model_copy(update={"encoder": "libx264"}))
encode("nvenc", cfg.model_copy(update={"encoder": "nvenc"}))
for delta in (-4, -2, 2):
    encode(f"nvenc_cq{cfg.crf + delta}", cfg.model_copy(update={"encoder": "nvenc"}),
           {"cq": str(cfg.crf + delta)})
x, n = result["encodes"]["libx264"], result["encodes"]["nvenc"]
result["nvenc_minus_x264_db"] = round(n["psnr_db"] - x["psnr_db"], 2)
result["nvenc_over_x264_bitrate"] = round(n["kbps"] / x["kbps"], 2)
save()
EOF
echo "encoder: exit $?"; cat "$OUTDIR/encoder.txt" | grep -v '^\s*$' | tail -12

# 4. seconds per minute of 1080p output, builtin and wav2lip on cuda, cold and warm
for engine in builtin wav2lip; do
    t=$(left); [ "$t" -gt 170 ] && t=170
    if [ "$t" -lt 60 ]; then echo "minute $engine: no time left"; continue; fi
    timeout "$t" "$PY" bench/bench_speed.py --part minute --engine "$engine" --device cuda \
        > "$OUTDIR/minute-$engine.txt" 2>&1
    echo "minute $engine: exit $?"; grep '^{' "$OUTDIR/minute-$engine.txt" | cut -c1-400
    cp "$(ls -t bench/out/bench-speed-minute-*.json 2>/dev/null | head -1)" \
        "$OUTDIR/minute-$engine.json" 2>/dev/null
done

# 5. the engine's CPU work spread over the server's cores: th10 and c01, the analysis in one pass
#    against segments at once, the render with one against several transplant threads
t=$(left); [ "$t" -gt 150 ] && t=150
if [ "$t" -gt 60 ]; then
    timeout "$t" "$PY" bench/bench_cores.py --workers 1 2 4 8 > "$OUTDIR/cores.txt" 2>&1
    echo "cores: exit $?"; grep -E '^(th10|c01)' "$OUTDIR/cores.txt" | cut -c1-200
    cp "$(ls -t bench/out/bench-cores-*.json 2>/dev/null | head -1)" \
        "$OUTDIR/cores.json" 2>/dev/null
else
    echo "cores: not run ($t s left)"
fi

# 6. the rest of make gpu, if time is left
t=$(left)
if [ "$t" -gt 60 ]; then
    timeout "$t" "$PY" bench/compare_devices.py --clips th08 th05 > "$OUTDIR/devices.txt" 2>&1
    echo "compare_devices: exit $?"
else
    echo "compare_devices: not run ($t s left)"
fi
echo "gpu_check: $(( $(date +%s) - START )) s"
