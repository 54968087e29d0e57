#!/usr/bin/env bash
# systemd/heygemd.service under a real systemd, as docs/service.md ("What was checked") says:
# systemd booted as PID 1 of its own PID, mount, cgroup (v2), UTS, IPC and network namespaces
# over a copy-on-write (overlayfs on tmpfs) view of this machine, heygemd installed as
# docs/service.md's Install section says (the committed tree at /opt/heygemd, this checkout's
# venv, the unit verbatim), then:
#   1. the unit with its SystemCallFilter= swapped for SystemCallLog= (a drop-in): start, one real
#      job (a talking clip + real speech), stop; every system call outside the unit's filter is
#      then in the kernel log (none may be);
#   2. the unit verbatim: start (READY), the sandbox in force on the main process, a real job
#      published, `heygemd status` for a user outside the heygemd group, stop while idle (exit 0,
#      nothing left in the cgroup), stop during a job (the video finished and published, exit 0).
# Nothing outside the namespaces changes; all is gone when the script exits. Needs root, systemd
# (252 was used), util-linux unshare/nsenter, overlayfs and cgroup2, on a machine whose PID 1 is
# not systemd (a build container or VM). Exit 0: every check passed; 1: a check failed; 2: cannot
# run here. Usage: tests/systemd_check.sh [unit file]   (HOLD=seconds keeps the machine up at the
# end for a look inside with nsenter).
#
# tests/systemd_check.sh --farm [unit file]: the job farm instead (docs/farm.md): a redis-server
# (a transient unit on 127.0.0.1:6390), systemd/heygemd-worker@.service verbatim but for its
# ExecStart without --gpu (this machine has none: a drop-in), heygemd.service as the intake with
# docs/farm.md's network drop-in; then: the worker's sandbox in force, a real job made by the
# worker and published by the intake, `systemctl stop` of the worker during a video (Celery's warm
# shutdown: the video finished, exit 0, nothing left in its cgroup) and no error, traceback or
# EPERM in the worker's journal.
set -euo pipefail

if [[ ${1:-} == --farm ]]; then export SYSTEMD_CHECK_FARM=1; shift; fi
FARM=${SYSTEMD_CHECK_FARM:-0}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UNIT=$(realpath "${1:-$REPO/systemd/heygemd.service}")
WORKER_UNIT=$REPO/systemd/heygemd-worker@.service
REDIS_PORT=6390
MEDIA=${HEYGEMD_MEDIA:-$REPO/../shared/media}
CLIP=$MEDIA/talking/th08_woman_older_en_real3dportrait_May5s.mp4
SPEECH=$MEDIA/speech/zh02_female_3s_cosyvoice_zero_shot_prompt.wav
LONG_SPEECH=$MEDIA/speech/en01_male_jfk_inaugural_11s.flac
VENV=$REPO/.venv

cannot() { echo "systemd_check: cannot run here: $*" >&2; exit 2; }

if [[ ${SYSTEMD_CHECK_INNER:-} != 1 ]]; then
    [[ $(id -u) == 0 ]] || cannot "needs root (it mounts an overlay and boots systemd in namespaces)"
    [[ -x /lib/systemd/systemd ]] || cannot "no /lib/systemd/systemd (apt-get install systemd)"
    for tool in unshare nsenter pivot_root runuser ip git; do
        command -v $tool >/dev/null || cannot "no $tool (apt-get install util-linux iproute2 git)"
    done
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null \
        || cannot "no overlayfs in this kernel"
    [[ $(readlink /proc/1/exe || true) != */systemd ]] \
        || cannot "PID 1 is systemd: install the unit on this machine instead (docs/service.md)"
    for f in "$CLIP" "$SPEECH" "$LONG_SPEECH" "$VENV/bin/heygemd" "$UNIT" "$WORKER_UNIT"; do
        [[ -e $f ]] || cannot "missing $f"
    done
    # a private mount namespace for this script: every mount below ends with it
    exec unshare --mount --propagation private env SYSTEMD_CHECK_INNER=1 "$0" "$@"
fi

W=$(mktemp -d /tmp/heygemd-systemd.XXXXXX)
R=$W/root
CG=
PID1=
FAILED=0
T0=$(date +%s)

log() { printf '[%4ss] %s\n' $(( $(date +%s) - T0 )) "$*"; }
ok() { log "ok    $*"; }
bad() { log "FAIL  $*"; FAILED=1; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
inside() { nsenter -t "$PID1" -m -u -i -n -p -C -- "$@"; }
prop() { inside systemctl show -p "$1" --value heygemd.service; }

cleanup() {
    local rc=$?
    if [[ -n $PID1 ]] && kill -0 "$PID1" 2>/dev/null; then
        kill -KILL "$PID1" 2>/dev/null || true   # PID 1 of its namespace: all in it go too
        for _ in $(seq 50); do kill -0 "$PID1" 2>/dev/null || break; sleep 0.1; done
    fi
    if [[ -n $CG && -d $CG ]]; then
        find "$CG" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
        rmdir "$CG" 2>/dev/null || true
    fi
    umount -R "$W" 2>/dev/null || umount -l "$W" 2>/dev/null || true
    rmdir "$W" 2>/dev/null || true
    exit $rc
}
trap cleanup EXIT

wait_until() {  # seconds description command...: poll every 0.5 s
    local limit=$1 what=$2; shift 2
    local end=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        if (( $(date +%s) >= end )); then bad "$what (not within ${limit}s)"; return 1; fi
        sleep 0.5
    done
}

# --- the machine: overlay of / (tmpfs upper), heygemd installed as docs/service.md says --------
mount -t tmpfs -o mode=755,size=8g tmpfs "$W"
mkdir "$W"/{lower,upper,ovl,root}
mount --bind / "$W/lower"
mount -t overlay overlay -o "lowerdir=$W/lower,upperdir=$W/upper,workdir=$W/ovl" "$R"

run_in_root() { chroot "$R" "$@"; }
run_in_root useradd --system --home-dir /var/lib/heygemd --shell /usr/sbin/nologin heygemd
run_in_root useradd --create-home --groups heygemd alice   # writes to the inbox
run_in_root useradd --create-home bob                      # any other user
rm -rf "$R/opt/heygemd" && mkdir -p "$R/opt/heygemd"
git -C "$REPO" archive HEAD | tar -x -C "$R/opt/heygemd"   # the committed tree
cp "$UNIT" "$R/opt/heygemd/systemd/heygemd.service"         # the unit under test
# the checkout's venv, re-pointed in the overlay only: a system interpreter (docs/service.md:
# not one under /root or /home) and the editable install's finder at /opt/heygemd
ln -sfn "$VENV" "$R/opt/heygemd/.venv"
ln -sfn /usr/bin/python3.11 "$R$VENV/bin/python3.11"
sed -i 's#^home = .*#home = /usr/bin#; s#^executable = .*#executable = /usr/bin/python3.11#' \
    "$R$VENV/pyvenv.cfg"
sed -i "s#'$REPO/heygemd'#'/opt/heygemd/heygemd'#" \
    "$R$VENV"/lib/python3.11/site-packages/__editable___heygemd_*_finder.py
install -d -m 2775 "$R"/srv/heygemd/{inbox,outbox,.work}
run_in_root chown heygemd:heygemd /srv/heygemd/inbox /srv/heygemd/outbox /srv/heygemd/.work
install -d "$R/var/lib/heygemd" "$R/var/log/heygemd"
run_in_root chown heygemd:heygemd /var/lib/heygemd /var/log/heygemd
install -d "$R/etc/heygemd"
sed -e 's#^inbox = .*#inbox = "/srv/heygemd/inbox"#' \
    -e 's#^outbox = .*#outbox = "/srv/heygemd/outbox"#' \
    -e 's#^work = .*#work = "/srv/heygemd/.work"#' \
    -e 's#^state = .*#state = "/var/lib/heygemd/state"#' \
    -e 's#^log_file = .*#log_file = "/var/log/heygemd/heygemd.log"#' \
    -e 's#^models = .*#models = "/opt/heygemd/models"#' \
    -e 's#^cache = .*#cache = "/var/lib/heygemd/cache"#' \
    -e 's#^settle_seconds = .*#settle_seconds = 3.0#' \
    "$R/opt/heygemd/config.toml" > "$R/etc/heygemd/config.toml"
install -m 0644 "$R/opt/heygemd/systemd/heygemd.service" "$R/etc/systemd/system/heygemd.service"
if (( FARM )); then   # started by hand once Redis is up; the farm's config and drop-ins
    # the venv runs on Debian's python3.11 here (3.11.2; see above): redis-py needs
    # async-timeout below 3.11.3, which pip left out for the venv's own 3.11.7. A Debian 12
    # install resolves it with pip; here it goes into the overlay's copy of the venv only.
    if ! chroot "$R" /opt/heygemd/.venv/bin/python -c 'import redis' 2>/dev/null; then
        "$VENV/bin/pip" install -q --no-deps --target "$R$VENV/lib/python3.11/site-packages" \
            'async-timeout>=4.0.3' || cannot "redis-py needs async-timeout on this python (pip)"
    fi
    sed -i "s#^broker = .*#broker = \"redis://127.0.0.1:$REDIS_PORT/0\"#" "$R/etc/heygemd/config.toml"
    install -m 0644 "$WORKER_UNIT" "$R/etc/systemd/system/heygemd-worker@.service"
    mkdir -p "$R/etc/systemd/system/heygemd.service.d" "$R/etc/systemd/system/heygemd-worker@.service.d"
    printf '[Service]\nPrivateNetwork=no\nIPAddressAllow=localhost\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n' \
        > "$R/etc/systemd/system/heygemd.service.d/farm.conf"
    exec_start=$(sed -n 's/^ExecStart=//p' "$WORKER_UNIT" | sed 's/ --gpu %i$//')
    printf '[Service]\nExecStart=\nExecStart=%s\n' "$exec_start" \
        > "$R/etc/systemd/system/heygemd-worker@.service.d/no-gpu.conf"
else
    ln -sf /etc/systemd/system/heygemd.service \
        "$R/etc/systemd/system/multi-user.target.wants/heygemd.service"   # enable
fi
# a quiet machine: nothing else of this host's services, timers or consoles
for u in postgresql.service getty@tty1.service console-getty.service e2scrub_reap.service \
         systemd-timesyncd.service systemd-pstore.service cron.service ssh.service \
         networking.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
         e2scrub_all.timer fstrim.timer man-db.timer logrotate.timer; do
    ln -sf /dev/null "$R/etc/systemd/system/$u"
done
# phase 1: the filter only logs; everything outside it reaches the kernel log
mkdir -p "$R/etc/systemd/system/heygemd.service.d"
filter=$(sed -n 's/^SystemCallFilter=//p' "$UNIT" | head -1)
[[ -n $filter ]] || { bad "the unit has a SystemCallFilter="; exit 1; }
(( FARM )) || printf '[Service]\nSystemCallFilter=\nSystemCallLog=~%s\n' "$filter" \
    > "$R/etc/systemd/system/heygemd.service.d/log-syscalls.conf"

# --- boot -------------------------------------------------------------------------------------
cg2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/self/mounts)
[[ -n $cg2 ]] || cannot "no cgroup2 mount (mount -t cgroup2 none /sys/fs/cgroup/unified)"
CG=$cg2/heygemd-check.$$
mkdir "$CG"
cat > "$W/boot.sh" <<'EOF'
set -e
R=$1
mount --make-rprivate /
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=755,nosuid tmpfs "$R/dev"
for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read -r name major minor <<<"$n"; mknod -m 666 "$R/dev/$name" c "$major" "$minor"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"; ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
touch "$R/dev/console"; mount --bind "$2" "$R/dev/console"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$R/run"
hostname heygemd-check
cd "$R"; mkdir -p .oldroot; pivot_root . .oldroot; umount -l /.oldroot; rmdir /.oldroot
mount --make-rshared /   # as systemd leaves it on a host (it does not in a container)
exec env -i container=heygemd-check TERM=dumb /lib/systemd/systemd --log-level=info \
    --log-target=console --show-status=no
EOF
: > "$W/console.log"
echo "heygemd-check $$ phase 1" > /dev/kmsg   # the kernel log is read from here on
(
    echo "$BASHPID" > "$CG/cgroup.procs"
    exec unshare --pid --mount --cgroup --uts --ipc --net --fork \
        bash "$W/boot.sh" "$R" "$W/console.log" </dev/null >"$W/console.log" 2>&1
) &
launcher=$!
for _ in $(seq 100); do PID1=$(pgrep -P "$launcher" | head -1 || true); [[ -n $PID1 ]] && break
    sleep 0.1; done
[[ -n $PID1 ]] || { bad "systemd started"; cat "$W/console.log"; exit 1; }
wait_until 120 "systemd reached multi-user (console: $W/console.log)" \
    inside systemctl is-system-running --wait || { tail -30 "$W/console.log"; exit 1; }
log "booted: $(inside systemctl --version | head -1), state $(inside systemctl is-system-running || true)"
inside systemctl --failed --no-legend --plain | sed 's/^/      failed unit: /' || true

j() { inside journalctl -q -o cat -u heygemd.service "$@"; }
drop_job() {  # name speech: alice copies a job in with umask 002, as docs/service.md asks
    inside runuser -u alice -- bash -c "umask 002 && mkdir /srv/heygemd/inbox/$1.part && cp '$CLIP' '$2' /srv/heygemd/inbox/$1.part/ && mv /srv/heygemd/inbox/$1.part /srv/heygemd/inbox/$1"
}
published() { [[ -f $R/srv/heygemd/outbox/$1/report.json ]]; }
report_status() { "$VENV/bin/python" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["status"], *[v["status"] for v in r["videos"]])' "$R/srv/heygemd/outbox/$1/report.json"; }
frames() { "$VENV/bin/python" -c 'import av,sys; c=av.open(sys.argv[1]); print(sum(1 for _ in c.decode(video=0)))' "$1"; }
started() { [[ $(prop ActiveState) == active && $(prop SubState) == running ]]; }
stopped_clean() {  # after a stop: exit 0, result success, no process left in the cgroup
    local status result procs
    status=$(prop ExecMainStatus); result=$(prop Result)
    procs=$(cat "$CG/system.slice/heygemd.service/cgroup.procs" 2>/dev/null || true)
    log "      exit status $status, result $result, processes left: ${procs:-none}"
    [[ $status == 0 && $result == success && -z $procs ]]
}
kernel_log_since_mark() { dmesg | sed -n "/heygemd-check $$ phase 1/,\$p"; }

# --- the farm (--farm) ------------------------------------------------------------------------
if (( FARM )); then
    W0=heygemd-worker@0.service
    wj() { inside journalctl -q -o cat -u "$W0" "$@"; }
    wprop() { inside systemctl show -p "$1" --value "$W0"; }
    log "farm: redis-server on 127.0.0.1:$REDIS_PORT, $W0 (ExecStart without --gpu), the intake"
    inside systemd-run --quiet --unit=heygemd-redis -p User=heygemd /usr/bin/redis-server \
        --port "$REDIS_PORT" --bind 127.0.0.1 --dir /var/lib/heygemd --appendonly yes --save ""
    redis_up() { inside redis-cli -p "$REDIS_PORT" ping | grep -q PONG; }
    wait_until 30 "redis answers" redis_up || exit 1
    inside systemd-analyze security "$W0" --no-pager | tail -1 | sed 's/^/      /'
    inside systemctl start "$W0"
    worker_ready() { wj | grep -q '"worker.started"'; }
    wait_until 300 "the worker started (journal: worker.started)" worker_ready || { wj | tail -30; exit 1; }
    main=$(wprop MainPID)
    st=$(inside cat "/proc/$main/status" || true)
    check "worker: seccomp filter on the main process" grep -q '^Seccomp:[[:space:]]*2' <<<"$st"
    check "worker: no new privileges" grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$st"
    check "worker: no capabilities" grep -q '^CapEff:[[:space:]]*0000000000000000' <<<"$st"
    t=$(date +%s)
    inside systemctl start heygemd.service
    check "intake started (READY=1 in $(( $(date +%s) - t ))s)" started
    drop_job farm1 "$SPEECH"
    wait_until 900 "farm1 published" published farm1 || { j | tail -20; wj | tail -20; exit 1; }
    check "farm1 done ($(report_status farm1))" test "$(report_status farm1)" == "done done"
    made_by=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["engine"]["workers"])' "$R/srv/heygemd/outbox/farm1/report.json")
    check "farm1 made by the worker's process ($made_by)" test "${made_by##*/}" == "$main"
    drop_job farm2 "$LONG_SPEECH"
    on_video() { compgen -G "$R/srv/heygemd/.work/*/.farm/progress/*.json"; }
    wait_until 600 "the worker on farm2's video" on_video || { wj | tail -20; exit 1; }
    t=$(date +%s)
    inside systemctl stop "$W0"
    log "      worker stop during a video took $(( $(date +%s) - t ))s"
    status=$(wprop ExecMainStatus); result=$(wprop Result)
    procs=$(cat "$CG/system.slice/system-heygemd\x2dworker.slice/$W0/cgroup.procs" 2>/dev/null || true)
    check "worker stop during a video: exit $status, $result, nothing left (${procs:-none})" \
        test "$status" == 0 -a "$result" == success -a -z "$procs"
    wait_until 120 "farm2 published from the video the stopping worker finished" published farm2
    published farm2 && check "farm2 done ($(report_status farm2))" test "$(report_status farm2)" == "done done"
    errors=$(wj | grep -cE '"level": "(error|critical)"|Traceback|Operation not permitted|EPERM' || true)
    check "no error, traceback or EPERM in the worker's journal ($errors)" test "$errors" == 0
    (( errors == 0 )) || wj | grep -E '"level": "(error|critical)"|Traceback|EPERM' | head -5 | cut -c1-300
    inside systemctl stop heygemd.service
    check "intake stop: clean" stopped_clean
    log "worker journal (last 5 lines):"
    wj | tail -5 | cut -c1-200 | sed 's/^/      /'
    (( FAILED == 0 )) && log "all checks passed" || log "some checks FAILED"
    exit $FAILED
fi

# --- phase 1: what the daemon calls outside the filter ----------------------------------------
log "phase 1: SystemCallFilter=$filter only logged (SystemCallLog=~$filter)"
inside systemctl start --no-block heygemd.service   # enabled: normally started at boot already
wait_until 300 "started with the logging drop-in" started || { j | tail -30; exit 1; }
ok "started at boot (READY=1 within $(( $(date +%s) - T0 ))s of the boot)"
drop_job job1 "$SPEECH"
wait_until 600 "job1 published" published job1 || { j | tail -30; exit 1; }
check "job1 done ($(report_status job1))" test "$(report_status job1)" == "done done"
inside systemctl stop heygemd.service
outside=$(kernel_log_since_mark | grep -E 'type=1326' || true)
if [[ -n $outside ]]; then
    bad "system calls outside $filter during start, job and stop:"; echo "$outside" | head -20
else
    ok "no system call outside $filter during start, a job and stop (kernel log clean)"
fi
# the control: the same logging does report a call outside the filter (swapoff, in @swap)
inside systemd-run --quiet --wait -p User=heygemd -p "SystemCallLog=~$filter" \
    /usr/bin/python3.11 -c 'import ctypes; ctypes.CDLL(None).syscall(168, b"/nonexistent")' || true
sleep 1
swapoff_logged() { kernel_log_since_mark | grep -q 'type=1326.*syscall=168 '; }
check "control: a call outside the filter (swapoff) is logged" swapoff_logged
rm "$R/etc/systemd/system/heygemd.service.d/log-syscalls.conf"
inside systemctl daemon-reload

# --- phase 2: the unit verbatim --------------------------------------------------------------
log "phase 2: the unit verbatim"
inside systemd-analyze security heygemd.service --no-pager | tail -1 | sed 's/^/      /'
t=$(date +%s)
inside systemctl start heygemd.service   # Type=notify: returns at READY=1
check "started (READY=1 in $(( $(date +%s) - t ))s)" started
main=$(prop MainPID)   # a PID of the machine's namespace
st=$(inside cat "/proc/$main/status" || true)
check "seccomp filter on the main process" grep -q '^Seccomp:[[:space:]]*2' <<<"$st"
check "no new privileges" grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$st"
check "no capabilities" grep -q '^CapEff:[[:space:]]*0000000000000000' <<<"$st"
check "umask 0002" grep -q '^Umask:[[:space:]]*0002' <<<"$st"
links=$(inside nsenter -t "$main" -n ip -o link show | awk -F': ' '{print $2}' | xargs || true)
check "network namespace holds only lo ($links)" test "$links" == lo
log "      IPAddressDeny=$(prop IPAddressDeny) ProcSubset=$(prop ProcSubset) PrivateMounts=$(prop PrivateMounts) RemoveIPC=$(prop RemoveIPC)"
inside mkdir -p /srv/share
inside mount -t tmpfs -o size=1m heygemd-late-mount /srv/share
check "a mount made after the start (a network share) reaches the service" \
    inside grep -q heygemd-late-mount "/proc/$main/mountinfo"
inside umount /srv/share
drop_job job2 "$SPEECH"
wait_until 600 "job2 published" published job2 || { j | tail -30; exit 1; }
check "job2 done ($(report_status job2))" test "$(report_status job2)" == "done done"
mp4=$(ls "$R"/srv/heygemd/outbox/job2/*.mp4)
n=$(frames "$mp4")
check "job2's video decodes ($n frames)" test "$n" -gt 0
errors=$(j | grep -cE '"level": "(error|critical)"|Traceback|Operation not permitted|EPERM' || true)
check "no error, traceback or EPERM in the journal ($errors)" test "$errors" == 0
check "no restart (NRestarts=$(prop NRestarts))" test "$(prop NRestarts)" == 0
as_bob=$(inside runuser -u bob -- /opt/heygemd/.venv/bin/heygemd --config /etc/heygemd/config.toml status 2>&1 || true)
check "heygemd status as a user outside the group: $(echo "$as_bob" | head -1)" \
    grep -q 'job2' <<<"$as_bob"
t=$(date +%s)
inside systemctl stop heygemd.service
log "      stop while idle took $(( $(date +%s) - t ))s"
check "stop while idle: clean" stopped_clean
ipc=$(inside ipcs | awk '$3 == "heygemd"'; inside find /dev/shm -user heygemd || true)
check "no IPC objects of heygemd left" test -z "$ipc"

inside systemctl start heygemd.service
check "started again" started
drop_job job3 "$LONG_SPEECH"
wait_until 300 "job3 running" bash -c "[[ \$(nsenter -t $PID1 -m -p systemctl show -p StatusText --value heygemd.service) == running* ]]"
log "      status: $(prop StatusText)"
procs=$(xargs -r ps -o args= -p < "$CG/system.slice/heygemd.service/cgroup.procs" | cut -c1-70 || true)
echo "$procs" | sed 's/^/      process: /'
check "three processes in the cgroup while a job runs (daemon, stderr filter, hearing worker)" \
    test "$(echo "$procs" | wc -l)" == 3
t=$(date +%s)
inside systemctl stop heygemd.service
log "      stop during a job took $(( $(date +%s) - t ))s"
check "stop during a job: clean" stopped_clean
check "stop during a job: the video was finished and job3 published" published job3
published job3 && log "      job3: $(report_status job3)"

log "journal (last 5 lines of the unit):"
j | tail -5 | cut -c1-200 | sed 's/^/      /'
if [[ -n ${HOLD:-} ]]; then log "holding for ${HOLD}s: nsenter -t $PID1 -a"; sleep "$HOLD" || true; fi
(( FAILED == 0 )) && log "all checks passed" || log "some checks FAILED"
exit $FAILED
