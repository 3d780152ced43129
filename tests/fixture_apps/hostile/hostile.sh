#!/bin/sh
# A hostile tenant's app: tries what no job may do and writes down what happened, one
# "what=result" line each in observations.txt; it always exits 0, so its outputs are kept.
# Usage: hostile.sh OTHER_JOB_DIR RUNNER_PID "HOST:PORT ..." MARKER
# Only busybox applets, so it runs the same on a runner and in the busybox test image.
victim=$1 runner=$2 servers=$3 marker=$4
bb=busybox
out=$PWD/observations.txt
note() { printf '%s=%s\n' "$1" "$2" >> "$out"; }
try() {
    what=$1
    shift
    if "$@" > /dev/null 2>&1; then note "$what" ok; else note "$what" failed; fi
}
# Signals sent to "pid 1" come back to this script in a container (its init forwards them): live on.
trap 'note got_term yes' TERM

# Another tenant's job directory, its files, and what else is in WORK_DIR.
try list_victim $bb ls "$victim"
try read_victim_inputs $bb sh -c "$bb cat '$victim'/inputs/*/*"
try read_victim_outputs $bb sh -c "$bb cat '$victim'/run/*"
try write_victim $bb sh -c "echo pwned > '$victim/run/pwned'"
note work_dir "$($bb ls -a "$($bb dirname "$victim")" 2>&1 | $bb tr '\n' ' ')"

# The runner: its environment, its files, the processes beside this one.
try read_runner_environ $bb cat "/proc/$runner/environ"
try read_runner_cmdline $bb cat "/proc/$runner/cmdline"
note processes "$(for f in /proc/[0-9]*/cmdline; do $bb tr '\0' ' ' < "$f"; echo; done 2>/dev/null | $bb tr '\n' '|')"
note env "$($bb env | $bb cut -d= -f1 | $bb sort | $bb tr '\n' ' ')"
try read_shadow $bb cat /etc/shadow
try write_usr $bb touch /usr/pwned
try write_root $bb touch /pwned

# The servers: Mongo, RabbitMQ, S3, the gateway, the cloud metadata endpoint.
for server in $servers; do
    try "connect_${server}" $bb nc -w 2 "${server%:*}" "${server##*:}" < /dev/null
done

# A daemon in a session of its own, outside this app's process group, meant to outlive the job.
$bb setsid $bb sh -c "$bb sleep 3600; : $marker" < /dev/null > /dev/null 2>&1 &
note daemon_started yes

# The runner, and PID 1.
try kill_runner $bb kill -TERM "$runner"
try kill_runner_hard $bb kill -KILL "$runner"
try kill_pid_1 $bb kill -TERM 1

# A tree the runner must still remove: closed (chmod 000), deep, oddly named.
$bb mkdir -p trap/a/b/c "$TMPDIR/trap/x"
echo locked > trap/a/b/c/file
$bb touch "trap/$(printf 'new\nline')" "trap/$(printf '\377\376')" "trap/-rf" "trap/ "
$bb chmod 000 trap/a/b/c/file trap/a/b/c trap/a/b trap/a "$TMPDIR/trap/x" "$TMPDIR/trap"
$bb chmod 000 trap
note trap_made yes
exit 0
