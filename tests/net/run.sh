#!/usr/bin/env bash
# Torrentphile across real (virtual) hosts: network namespaces joined by a bridge.
#
#   bash tests/net/run.sh target/release/torrentphile      (what `make test-net` runs)
#
# Needs root, `ip netns` and `tc`; otherwise it says why on one line and exits 0 (skipped).
#
# The network, all of it private to this run (nothing is ever sent outside these namespaces):
#
#   ns  tpnetPID-br   bridge br0, one port per host (vb-tr, vb-h1, vb-h2, vb-h3, vb-rl)
#   ns  tpnetPID-tr   eth0 10.77.0.1    the tracker (10.77.0.1:8000, --timeout 3)
#   ns  tpnetPID-h1   eth0 10.77.0.11   a seeder
#   ns  tpnetPID-h2   eth0 10.77.0.12   a seeder (the delayed one, the one cut in check 4)
#   ns  tpnetPID-h3   eth0 10.77.0.13   the downloader (`torrentphile get`)
#   ns  tpnetPID-rl   eth0 10.77.0.20   `torrentphile relay`, adding delay (only without tc netem)
#   ns  tpnetPID-c1..c3  eth0 10.77.0.31-33  a three-tracker Raft cluster (check 5): clients on
#                     :8000, cluster ports on :9100
#
# The checks:
#   1. cross-host: h3 downloads a 32 MiB random file from h1; sha1sum identical.
#   2. slow link: tbf 20mbit on h1's eth0 (h1's uploads); an 8 MiB download still completes
#      byte-identical and takes at least as long as 20 Mbit/s allows (the shaper was on the path).
#   3. delayed link: 25 ms each way between h3 and the seeder on h2 (netem if the kernel has
#      it, else `torrentphile relay`); a PING round trip shows >= 50 ms, and a 32 MiB
#      download completes byte-identical.
#   4. silent death: h1 and h2 both seed a 200 MiB random file; while h3 is downloading from
#      both, h2's switch port is set down (no FIN, no RST: its packets just stop). The tracker
#      must drop h2 within its heartbeat timeout (3 s, polled with WHOHAS from the tracker's
#      namespace over bash's /dev/tcp), and the download must finish from h1, byte-identical.
#   5. cluster cut: three trackers in c1, c2, c3 (`tracker --cluster`); a seeder on h1 knows all
#      three. The leader's switch port is set down: another tracker must lead within 10 s
#      (STATUS on the cluster ports), the seeder must follow it (WHOHAS on the new leader lists
#      it), and h3 downloads the file through the three-tracker list, byte-identical.
#   6. Transmission: a Transmission seeder (transmission-cli) on 10.77.0.20 announces to our
#      tracker over HTTP; `get --torrent` on h3 downloads a 16 MiB file from it over the
#      BitTorrent wire; sha1 identical (SKIP when transmission-cli is not installed).
#   7. --advertise: a second tracker in tr bound to 0.0.0.0:8100; two peers in tr register
#      with it over 127.0.0.1. The one with `--advertise 10.77.0.1` is listed to h3 as
#      10.77.0.1:P and h3 downloads from it, sha1 identical; the one without is listed only
#      to loopback askers: h3's WHOHAS gets `ERR not-found ... --advertise` (never a 127.x
#      address) and its `get` fails, while WHOHAS from tr's own loopback lists 127.0.0.1:P.
#
# CHECKS="1 7" runs only those checks (all by default).
#
# Every wait is bounded; namespaces and processes are torn down on any exit (trap EXIT).
# Prints PASS/FAIL per check and `N passed, M failed`; exits non-zero if any check failed.
# KEEP=1 keeps the work folder (logs, files) for a look afterwards.

set -u

say() { printf '%s\n' "$*"; }
skip() {
    say "tests/net: SKIP: $*"
    exit 0
}

# ---------------------------------------------------------------- preconditions (or skip)
BIN=${1:-target/release/torrentphile}
if [[ $EUID -ne 0 ]]; then
    skip "not root (network namespaces need root; run as root: sudo make test-net)"
fi
if ! command -v ip >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive timeout 120 apt-get install -y -q iproute2 \
            </dev/null >/dev/null 2>&1
    fi
    command -v ip >/dev/null 2>&1 ||
        skip "the ip command (iproute2) is missing and could not be installed with apt-get"
fi
command -v tc >/dev/null 2>&1 || skip "the tc command (iproute2) is missing"
command -v timeout >/dev/null 2>&1 || skip "the timeout command (coreutils) is missing"
command -v sha1sum >/dev/null 2>&1 || skip "the sha1sum command (coreutils) is missing"
if [[ ! -x $BIN ]]; then
    say "tests/net: $BIN is not an executable; build it first (make build)" >&2
    exit 1
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

P=tpnet$$
NS_BR=$P-br NS_TR=$P-tr NS_H1=$P-h1 NS_H2=$P-h2 NS_H3=$P-h3 NS_RL=$P-rl
NS_C=("$P-c1" "$P-c2" "$P-c3")
if ! ip netns add "$NS_BR" 2>/dev/null; then
    skip "\`ip netns add\` does not work here (no CAP_SYS_ADMIN or no netns support)"
fi
NAMESPACES=("$NS_BR")

# ---------------------------------------------------------------- teardown, always
WORK=$(mktemp -d /tmp/torrentphile-net.XXXXXX)
declare -A PIDS=()

teardown() {
    local rc=$? name pid ns
    trap - EXIT INT TERM
    for name in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$name]}" 2>/dev/null
    done
    sleep 0.2
    for name in "${!PIDS[@]}"; do
        kill -KILL "${PIDS[$name]}" 2>/dev/null
        wait "${PIDS[$name]}" 2>/dev/null
    done
    # Anything still living in our namespaces was started by this script.
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null
        done
    done
    for ns in "${NAMESPACES[@]}"; do
        ip netns del "$ns" 2>/dev/null
    done
    if [[ ${KEEP:-0} == 1 ]]; then
        say "tests/net: kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# start NAME NS CMD...: run CMD in namespace NS in the background, logs in $WORK/NAME.{out,err}
start() {
    local name=$1 ns=$2
    shift 2
    ip netns exec "$ns" "$@" </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS[$name]=$!
}

# stop NAME: end a process started by `start`.
stop() {
    local pid=${PIDS[$1]:-}
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null
    local i
    for ((i = 0; i < 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "PIDS[$1]"
}

# wait_ready NAME SECS: wait for `listening on` on NAME's stdout (and for it to stay alive).
wait_ready() {
    local name=$1 deadline=$(($(now_ms) + $2 * 1000))
    while ! grep -q '^listening on ' "$WORK/$name.out" 2>/dev/null; do
        if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            say "  $name exited before it was ready: $(tail -n 3 "$WORK/$name.err" | tr '\n' ' ')"
            return 1
        fi
        if (($(now_ms) > deadline)); then
            say "  $name did not print 'listening on' within $2s"
            return 1
        fi
        sleep 0.05
    done
}

# whohas NAME: one WHOHAS to the tracker, from the tracker's own namespace; prints the reply.
whohas() {
    ip netns exec "$NS_TR" timeout 3 bash -c '
        exec 3<>/dev/tcp/10.77.0.1/8000 || exit 1
        printf "WHOHAS %s\n" "$1" >&3
        IFS= read -r -t 2 line <&3 || exit 1
        printf "%s\n" "${line%$'"'"'\r'"'"'}"' _ "$1" 2>/dev/null
}

# wait_holders NAME SECS ID...: wait until the tracker lists every ID as a holder of NAME.
wait_holders() {
    local name=$1 deadline=$(($(now_ms) + $2 * 1000)) reply id missing
    shift 2
    while :; do
        reply=$(whohas "$name")
        missing=
        for id in "$@"; do
            [[ " $reply " == *" $id "* ]] || missing+=" $id"
        done
        [[ -z $missing ]] && return 0
        if (($(now_ms) > deadline)); then
            say "  the tracker still lacks$missing for $name after $2s (WHOHAS said: ${reply:-nothing})"
            return 1
        fi
        sleep 0.1
    done
}

# rtt_ms NS HOST PORT: one PING/PONG round trip to a peer, in milliseconds (connect excluded).
rtt_ms() {
    ip netns exec "$1" timeout 5 bash -c '
        exec 3<>/dev/tcp/$1/$2 || exit 1
        t0=${EPOCHREALTIME/./}
        printf "PING\n" >&3
        IFS= read -r -t 4 line <&3 || exit 1
        t1=${EPOCHREALTIME/./}
        [[ $line == PONG* ]] || exit 1
        echo $(((t1 - t0) / 1000))' _ "$2" "$3" 2>/dev/null
}

sha() { sha1sum "$1" 2>/dev/null | cut -d' ' -f1; }

# tx_bytes NS DEV: bytes sent by DEV in NS.
tx_bytes() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/tx_bytes" 2>/dev/null || echo 0; }
rx_bytes() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/rx_bytes" 2>/dev/null || echo 0; }

PASSED=0 FAILED=0
pass() {
    say "PASS $*"
    PASSED=$((PASSED + 1))
}
fail() {
    say "FAIL $*"
    FAILED=$((FAILED + 1))
}
# logs NAME...: the last lines of some logs, after a failure.
logs() {
    local name
    for name in "$@"; do
        for f in "$WORK/$name.out" "$WORK/$name.err"; do
            [[ -s $f ]] && sed "s|^|  ${f##*/}: |" <(tail -n 5 "$f")
        done
    done
}

# get_file NAME DIR SECS LOG: download NAME into DIR on h3 (foreground, bounded); sets GET_RC.
get_file() {
    local name=$1 dir=$2 secs=$3 log=$4
    ip netns exec "$NS_H3" timeout "$secs" "$BIN" get "$name" --dir "$dir" \
        --tracker 10.77.0.1:8000 --bind 0.0.0.0 --port 0 --timeout 3 \
        </dev/null >"$WORK/$log.out" 2>"$WORK/$log.err"
    GET_RC=$?
}

# same_file A B: both exist and have the same SHA-1.
same_file() { [[ -f $1 && -f $2 && $(sha "$1") == "$(sha "$2")" ]]; }

# ---------------------------------------------------------------- the network
setup_net() {
    local ns addr port
    ip -n "$NS_BR" link add br0 type bridge || return 1
    ip -n "$NS_BR" link set lo up && ip -n "$NS_BR" link set br0 up || return 1
    for spec in "$NS_TR 10.77.0.1 vb-tr" "$NS_H1 10.77.0.11 vb-h1" "$NS_H2 10.77.0.12 vb-h2" \
        "$NS_H3 10.77.0.13 vb-h3" "$NS_RL 10.77.0.20 vb-rl" "${NS_C[0]} 10.77.0.31 vb-c1" \
        "${NS_C[1]} 10.77.0.32 vb-c2" "${NS_C[2]} 10.77.0.33 vb-c3"; do
        read -r ns addr port <<<"$spec"
        ip netns add "$ns" || return 1
        NAMESPACES+=("$ns")
        ip -n "$ns" link set lo up || return 1
        # eth0 in the host, its other end a port of the bridge.
        ip -n "$ns" link add eth0 type veth peer name "$port" netns "$NS_BR" || return 1
        ip -n "$NS_BR" link set "$port" master br0 up || return 1
        ip -n "$ns" addr add "$addr/24" dev eth0 || return 1
        ip -n "$ns" link set eth0 up || return 1
    done
}

if ! setup_net; then
    say "FAIL setup: could not build the namespaces and the bridge"
    say "0 passed, 1 failed"
    exit 1
fi

# Files, made up front (a peer shares what is in its folder when it starts).
mkdir -p "$WORK"/{src,h1,h2,h2delay,h3} || exit 1
head -c $((32 << 20)) /dev/urandom >"$WORK/src/cross.bin"
head -c $((8 << 20)) /dev/urandom >"$WORK/src/slow.bin"
head -c $((32 << 20)) /dev/urandom >"$WORK/src/delay.bin"
head -c $((200 << 20)) /dev/urandom >"$WORK/src/cut.bin"
cp "$WORK/src/cross.bin" "$WORK/src/slow.bin" "$WORK/h1/"
cp "$WORK/src/delay.bin" "$WORK/h2delay/"
# Two seeders of one big file: hard links, the bytes are only read.
ln "$WORK/src/cut.bin" "$WORK/h1/cut.bin"
ln "$WORK/src/cut.bin" "$WORK/h2/cut.bin"

start tracker "$NS_TR" "$BIN" tracker --bind 10.77.0.1 --port 8000 --timeout 3
if ! wait_ready tracker 10; then
    logs tracker
    say "FAIL setup: the tracker did not start"
    say "0 passed, 1 failed"
    exit 1
fi

# The seeder on h1 (checks 1, 2 and 4). Its tracker id is h1's address plus --port.
start seed1 "$NS_H1" "$BIN" peer --dir "$WORK/h1" --port 7100 --bind 0.0.0.0 \
    --tracker 10.77.0.1:8000 --timeout 3
SEED1_OK=1
wait_ready seed1 20 && wait_holders cross.bin 20 10.77.0.11:7100 || SEED1_OK=0

# ---------------------------------------------------------------- 1. across hosts
check_cross() {
    local what="1 cross-host download (32 MiB, h1 -> h3)"
    ((SEED1_OK)) || { fail "$what: the seeder on h1 did not come up"; logs seed1; return; }
    local t0=$(now_ms)
    get_file cross.bin "$WORK/h3" 60 get-cross
    local ms=$(($(now_ms) - t0))
    if ((GET_RC != 0)); then
        fail "$what: get exited $GET_RC"
        logs get-cross seed1
    elif ! same_file "$WORK/src/cross.bin" "$WORK/h3/cross.bin"; then
        fail "$what: the downloaded file differs from the original"
    else
        pass "$what: sha1 identical, ${ms} ms"
    fi
}

# ---------------------------------------------------------------- 2. slow link
check_slow() {
    local what="2 slow link (tbf 20mbit on h1, 8 MiB)"
    ((SEED1_OK)) || { fail "$what: the seeder on h1 did not come up"; return; }
    if ! ip netns exec "$NS_H1" tc qdisc add dev eth0 root tbf rate 20mbit burst 32kbit latency 400ms; then
        fail "$what: could not add the tbf qdisc"
        return
    fi
    local t0=$(now_ms)
    get_file slow.bin "$WORK/h3" 60 get-slow
    local ms=$(($(now_ms) - t0))
    ip netns exec "$NS_H1" tc qdisc del dev eth0 root 2>/dev/null
    # 8 MiB at 20 Mbit/s is 3.4 s; well under that means the shaper was not on the path.
    local floor=$(((8 << 20) * 8 / 20000 * 8 / 10))
    if ((GET_RC != 0)); then
        fail "$what: get exited $GET_RC"
        logs get-slow seed1
    elif ! same_file "$WORK/src/slow.bin" "$WORK/h3/slow.bin"; then
        fail "$what: the downloaded file differs from the original"
    elif ((ms < floor)); then
        fail "$what: done in ${ms} ms, faster than 20 Mbit/s allows (< ${floor} ms): tbf was not on the path"
    else
        pass "$what: sha1 identical, ${ms} ms ($(((8 << 20) * 8 / ms / 1000)) Mbit/s)"
    fi
}

# ---------------------------------------------------------------- 3. delayed link
# The delaying relay, for kernels without netem: `torrentphile relay` (src/relay.rs, std only),
# running in its own namespace (rl, 10.77.0.20). Every chunk it reads from one side is written
# to the other side 25 ms later, in order; chunks are not spaced out, so the delay is added
# without capping the bandwidth (a bounded queue per direction keeps TCP's back pressure).
#
# How it sits on the data path: the delayed seeder (on h2, port 7300) reaches the tracker
# through a relay (its --tracker is 10.77.0.20:8000, relayed to 10.77.0.1:8000). The tracker
# names a peer by the source address of its tracker connection plus its --port, so it lists
# the seeder as 10.77.0.20:7300, and a second relay forwards 10.77.0.20:7300 to
# 10.77.0.12:7300. A downloader that asks the tracker therefore connects to the relay, and
# every request and every data byte between it and the seeder is held 25 ms each way, as is
# the seeder's tracker link (its heartbeats).

check_delay() {
    local what="3 delayed link (25 ms each way, h2 -> h3, 32 MiB)" how tracker_addr id host
    # Does this kernel have netem? Try it on the relay's host, which is otherwise unused.
    if ip netns exec "$NS_RL" tc qdisc add dev eth0 root netem delay 25ms 2>/dev/null; then
        ip netns exec "$NS_RL" tc qdisc del dev eth0 root 2>/dev/null
        # netem on both ends of h2's link: 25 ms out of h2, 25 ms into it.
        if ! ip netns exec "$NS_H2" tc qdisc add dev eth0 root netem delay 25ms ||
            ! ip netns exec "$NS_BR" tc qdisc add dev vb-h2 root netem delay 25ms; then
            fail "$what: could not add the netem qdiscs"
            return
        fi
        how="tc netem"
        tracker_addr=10.77.0.1:8000 id=10.77.0.12:7300 host=10.77.0.12
    else
        start relay "$NS_RL" "$BIN" relay --bind 10.77.0.20 --port 8000 --to 10.77.0.1:8000 --delay 25
        start relay2 "$NS_RL" "$BIN" relay --bind 10.77.0.20 --port 7300 --to 10.77.0.12:7300 --delay 25
        if ! wait_ready relay 10 || ! wait_ready relay2 10; then
            fail "$what: the relay did not start"
            logs relay relay2
            return
        fi
        how="torrentphile relay (no netem in this kernel)"
        tracker_addr=10.77.0.20:8000 id=10.77.0.20:7300 host=10.77.0.20
    fi
    start seed2delay "$NS_H2" "$BIN" peer --dir "$WORK/h2delay" --port 7300 --bind 0.0.0.0 \
        --tracker "$tracker_addr" --timeout 3
    if ! wait_ready seed2delay 20 || ! wait_holders delay.bin 20 "$id"; then
        fail "$what: the delayed seeder did not register as $id"
        logs seed2delay relay
        stop seed2delay
        return
    fi
    # The delay is really on the path: a PING to the seeder's address as the tracker gives
    # it takes at least two one-way delays; the undelayed seeder on h1 answers at once.
    local slow fast
    slow=$(rtt_ms "$NS_H3" "$host" 7300)
    fast=$(rtt_ms "$NS_H3" 10.77.0.11 7100)
    local t0=$(now_ms)
    get_file delay.bin "$WORK/h3" 90 get-delay
    local ms=$(($(now_ms) - t0))
    if [[ -z $slow ]] || ((slow < 48)); then
        fail "$what [$how]: PING round trip to $id took ${slow:-no answer} ms, expected >= 50: no delay on the path"
    elif ((GET_RC != 0)); then
        fail "$what [$how]: get exited $GET_RC"
        logs get-delay seed2delay relay
    elif ! same_file "$WORK/src/delay.bin" "$WORK/h3/delay.bin"; then
        fail "$what [$how]: the downloaded file differs from the original"
    elif ! grep -q 'from 1 peer' "$WORK/get-delay.out"; then
        fail "$what [$how]: expected the file from the delayed seeder only: $(cat "$WORK/get-delay.out")"
    else
        pass "$what [$how]: sha1 identical, ${ms} ms; PING rtt ${slow} ms via $id vs ${fast:-?} ms direct"
    fi
    stop seed2delay
    stop relay
    stop relay2
    ip netns exec "$NS_H2" tc qdisc del dev eth0 root 2>/dev/null
    ip netns exec "$NS_BR" tc qdisc del dev vb-h2 root 2>/dev/null
}

# ---------------------------------------------------------------- 4. a host cut mid-transfer
# The download is shaped to CUT_RATE on h3's switch port so that it lasts a few seconds and
# the cut lands in the middle of it, whatever the machine's speed (unshaped, 200 MiB takes
# a second or two here, too short to aim a cut at from a shell loop).
CUT_RATE=${CUT_RATE:-400mbit}
check_cut() {
    local what="4 silent death (h2 cut mid-transfer of 200 MiB from h1+h2)"
    ((SEED1_OK)) || { fail "$what: the seeder on h1 did not come up"; return; }
    start seed2 "$NS_H2" "$BIN" peer --dir "$WORK/h2" --port 7200 --bind 0.0.0.0 \
        --tracker 10.77.0.1:8000 --timeout 3
    if ! wait_ready seed2 20 || ! wait_holders cut.bin 20 10.77.0.11:7100 10.77.0.12:7200; then
        fail "$what: the two seeders are not both listed for cut.bin"
        logs seed2
        return
    fi
    if ! ip netns exec "$NS_BR" tc qdisc add dev vb-h3 root tbf rate "$CUT_RATE" burst 256kbit latency 100ms; then
        fail "$what: could not shape h3's port"
        return
    fi
    local from_h2_0 to_h3_0
    from_h2_0=$(rx_bytes "$NS_BR" vb-h2) # what h2 sent into the switch
    to_h3_0=$(tx_bytes "$NS_BR" vb-h3)   # what the switch sent to h3
    start get-cut "$NS_H3" timeout 90 "$BIN" get cut.bin --dir "$WORK/h3" \
        --tracker 10.77.0.1:8000 --bind 0.0.0.0 --port 0 --timeout 3
    # Cut once both seeders are sending and h3 has a good part of the file, but not all.
    local deadline=$(($(now_ms) + 30000)) from_h2 to_h3 alive=1
    while :; do
        from_h2=$(($(rx_bytes "$NS_BR" vb-h2) - from_h2_0))
        to_h3=$(($(tx_bytes "$NS_BR" vb-h3) - to_h3_0))
        ((from_h2 > 8 << 20 && to_h3 > 40 << 20)) && break
        if ! kill -0 "${PIDS[get-cut]}" 2>/dev/null; then
            alive=0
            break
        fi
        if (($(now_ms) > deadline)); then
            fail "$what: the transfer did not get going in 30s (h2 sent $from_h2, h3 got $to_h3 bytes)"
            logs get-cut seed1 seed2
            return
        fi
        sleep 0.05
    done
    ip -n "$NS_BR" link set vb-h2 down
    local cut_at=$(now_ms)
    if ((alive == 0)) || ! kill -0 "${PIDS[get-cut]}" 2>/dev/null || [[ -f $WORK/h3/cut.bin ]]; then
        fail "$what: the download ended before the cut (lower CUT_RATE=$CUT_RATE)"
        logs get-cut
        return
    fi
    say "  cut h2 after it sent $((from_h2 >> 20)) MiB, with $((to_h3 >> 20)) of 200 MiB at h3"
    # (a) the tracker forgets h2 within its timeout (3 s, plus 1 s for the polling itself).
    # One bash in the tracker's namespace polls WHOHAS every 50 ms for up to 8 s and prints
    # how long after the cut h2 was gone, then the last reply.
    local dropped_ms reply
    {
        read -r dropped_ms
        IFS= read -r reply
    } < <(ip netns exec "$NS_TR" timeout 10 bash -c '
        cut=$1 reply=
        while :; do
            now=$(( ${EPOCHREALTIME/./} / 1000 ))
            ((now - cut > 8000)) && { echo -; echo "$reply"; exit; }
            if exec 3<>/dev/tcp/10.77.0.1/8000; then
                printf "WHOHAS cut.bin\n" >&3
                IFS= read -r -t 2 reply <&3
                exec 3<&-
                reply=${reply%$'"'"'\r'"'"'}
                if [[ -n $reply && " $reply " != *" 10.77.0.12:7200 "* ]]; then
                    echo $(( ${EPOCHREALTIME/./} / 1000 - cut )); echo "$reply"; exit
                fi
            fi
            sleep 0.05
        done' _ "$cut_at" 2>/dev/null)
    # (b) the download finishes from h1.
    local pid=${PIDS[get-cut]} rc
    deadline=$(($(now_ms) + 60000))
    while kill -0 "$pid" 2>/dev/null && (($(now_ms) < deadline)); do sleep 0.1; done
    wait "$pid"
    rc=$?
    unset "PIDS[get-cut]"
    local done_ms=$(($(now_ms) - cut_at))
    ip netns exec "$NS_BR" tc qdisc del dev vb-h3 root 2>/dev/null
    if [[ ! $dropped_ms =~ ^[0-9]+$ ]]; then
        fail "$what: the tracker still lists the dead host 8 s after the cut: ${reply:-no reply}"
    elif ((dropped_ms > 4000)); then
        fail "$what: the tracker dropped the dead host only ${dropped_ms} ms after the cut (timeout 3 s)"
    elif [[ " $reply " != *" 10.77.0.11:7100 "* ]]; then
        fail "$what: the tracker dropped the live seeder h1 too: $reply"
    elif ((rc != 0)); then
        fail "$what: get exited $rc $( ((rc == 124)) && echo '(timed out)')"
        logs get-cut
    elif ! same_file "$WORK/src/cut.bin" "$WORK/h3/cut.bin"; then
        fail "$what: the downloaded file differs from the original"
    else
        pass "$what: tracker dropped h2 ${dropped_ms} ms after the cut; download finished ${done_ms} ms after it, sha1 identical"
    fi
    stop seed2
}

# ---------------------------------------------------------------- 5. cluster cut
# ask NS HOST PORT LINE: one line to a server from namespace NS; prints the reply line.
ask() {
    ip netns exec "$1" timeout 3 bash -c '
        exec 3<>/dev/tcp/$1/$2 || exit 1
        printf "%s\n" "$3" >&3
        IFS= read -r -t 2 line <&3 || exit 1
        printf "%s\n" "${line%$'"'"'\r'"'"'}"' _ "$2" "$3" "$4" 2>/dev/null
}

# cluster_leader SECS SKIP: the number (1-3) of the tracker that says it leads, other than SKIP.
cluster_leader() {
    local deadline=$(($(now_ms) + $1 * 1000)) i
    while (($(now_ms) < deadline)); do
        for i in 1 2 3; do
            ((i == $2)) && continue
            if [[ $(ask "${NS_C[i - 1]}" "10.77.0.3$i" 9100 STATUS) == *" role=leader "* ]]; then
                echo "$i"
                return 0
            fi
        done
        sleep 0.05
    done
    return 1
}

check_cluster() {
    local what="5 cluster cut" i trackers=() old new cut_at elected_ms reply
    printf '1 10.77.0.31:9100\n2 10.77.0.32:9100\n3 10.77.0.33:9100\n' >"$WORK/cluster.txt"
    for i in 1 2 3; do
        start "c$i" "${NS_C[i - 1]}" "$BIN" tracker --bind 0.0.0.0 --port 8000 --timeout 3 \
            --cluster "$WORK/cluster.txt" --id "$i" --state "$WORK/c$i"
        trackers+=(--tracker "10.77.0.3$i:8000")
    done
    for i in 1 2 3; do
        if ! wait_ready "c$i" 10; then
            fail "$what: tracker c$i did not start"
            logs "c$i"
            return
        fi
    done
    if ! old=$(cluster_leader 15 0); then
        fail "$what: no leader among the three trackers in 15 s"
        logs c1 c2 c3
        return
    fi
    mkdir -p "$WORK/h1c" "$WORK/h3c"
    head -c $((4 << 20)) /dev/urandom >"$WORK/src/cl.bin"
    cp "$WORK/src/cl.bin" "$WORK/h1c/"
    start seedc "$NS_H1" "$BIN" peer --dir "$WORK/h1c" --port 7150 --bind 0.0.0.0 \
        "${trackers[@]}" --timeout 3
    local deadline=$(($(now_ms) + 20000))
    until [[ $(ask "${NS_C[old - 1]}" "10.77.0.3$old" 8000 "WHOHAS cl.bin") == *10.77.0.11:7150* ]]; do
        if (($(now_ms) > deadline)); then
            fail "$what: the leader c$old never listed the seeder"
            logs seedc
            return
        fi
        sleep 0.1
    done
    ip -n "$NS_BR" link set "vb-c$old" down
    cut_at=$(now_ms)
    if ! new=$(cluster_leader 10 "$old"); then
        fail "$what: no new leader within 10 s of cutting c$old"
        logs c1 c2 c3
        return
    fi
    elected_ms=$(($(now_ms) - cut_at))
    deadline=$(($(now_ms) + 20000))
    until reply=$(ask "${NS_C[new - 1]}" "10.77.0.3$new" 8000 "WHOHAS cl.bin") &&
        [[ $reply == *10.77.0.11:7150* ]]; do
        if (($(now_ms) > deadline)); then
            fail "$what: the seeder did not follow the new leader c$new in 20 s (${reply:-no reply})"
            logs seedc
            return
        fi
        sleep 0.1
    done
    local followed_ms=$(($(now_ms) - cut_at))
    ip netns exec "$NS_H3" timeout 30 "$BIN" get cl.bin --dir "$WORK/h3c" "${trackers[@]}" \
        --bind 0.0.0.0 --port 0 --timeout 3 </dev/null >"$WORK/get-cl.out" 2>"$WORK/get-cl.err"
    local rc=$?
    ip -n "$NS_BR" link set "vb-c$old" up
    if ((rc != 0)); then
        fail "$what: get through the three trackers exited $rc"
        logs get-cl
    elif ! same_file "$WORK/src/cl.bin" "$WORK/h3c/cl.bin"; then
        fail "$what: the downloaded file differs from the original"
    else
        pass "$what: c$new leads ${elected_ms} ms after c$old's port went down; the seeder followed at ${followed_ms} ms; download through the list, sha1 identical"
    fi
    stop seedc
    for i in 1 2 3; do stop "c$i"; done
}

# ---------------------------------------------------------------- 6. Transmission seeds to us
# Transmission refuses peers on 127.0.0.0/8, so this is the one place it can be tried: a
# Transmission seeder on the relay's host (10.77.0.20, otherwise idle by now) announces to our
# tracker's HTTP announce; `get --torrent` on h3 learns it there and downloads over the
# BitTorrent wire, every piece checked against the .torrent. Transmission runs with DHT, LPD,
# PEX, uTP and port mapping off (its settings.json), so it talks to nobody but us.
check_transmission() {
    local what="6 Transmission seeder (10.77.0.20) -> get --torrent on h3 (16 MiB)"
    if ! command -v transmission-cli >/dev/null 2>&1; then
        say "SKIP $what: transmission-cli is not installed (apt-get install transmission-cli)"
        return
    fi
    mkdir -p "$WORK/tm" "$WORK/tmcfg" "$WORK/h3tm" || { fail "$what: mkdir"; return; }
    head -c $((16 << 20)) /dev/urandom >"$WORK/tm/tm.bin"
    cat >"$WORK/tmcfg/settings.json" <<'JSON'
{ "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
  "port-forwarding-enabled": false, "encryption": 0, "peer-port": 51413 }
JSON
    if ! "$BIN" torrent create -l 18 -a http://10.77.0.1:8000/announce -o "$WORK/tm.torrent" \
        "$WORK/tm/tm.bin" >/dev/null 2>&1; then
        fail "$what: torrent create failed"
        return
    fi
    start transmission "$NS_RL" env HOME="$WORK/tmcfg" transmission-cli -g "$WORK/tmcfg" \
        -w "$WORK/tm" -p 51413 -v -et -M -U "$WORK/tm.torrent"
    # Transmission hashes its copy, then announces; until it does, `get` finds no peer and
    # says so at once: try again, bounded. Transmission unchokes in rounds of 10 s, so `get`
    # waits 15 s for an unchoke (its --timeout) instead of this script's usual 3.
    # transmission-cli redraws a status line forever: only its stderr is worth keeping.
    local t0=$(now_ms) deadline=$(($(now_ms) + 90000))
    GET_RC=1
    while ((GET_RC != 0 && $(now_ms) < deadline)); do
        ip netns exec "$NS_H3" timeout 60 "$BIN" get --torrent "$WORK/tm.torrent" \
            --dir "$WORK/h3tm" --tracker 10.77.0.1:8000 --bind 0.0.0.0 --port 0 --timeout 15 \
            </dev/null >"$WORK/get-tm.out" 2>"$WORK/get-tm.err"
        GET_RC=$?
        ((GET_RC == 0)) || sleep 1
    done
    local ms=$(($(now_ms) - t0))
    if ((GET_RC != 0)); then
        fail "$what: get --torrent exited $GET_RC"
        logs get-tm tracker
        sed 's/^/  transmission.err: /' <(tail -n 5 "$WORK/transmission.err")
    elif ! same_file "$WORK/tm/tm.bin" "$WORK/h3tm/tm.bin"; then
        fail "$what: the downloaded file differs from the original"
    else
        pass "$what: sha1 identical, ${ms} ms from Transmission's start"
    fi
    stop transmission
}

# ---------------------------------------------------------------- 7. --advertise
# Issue 14, item 7: a peer on the tracker's machine talks to it over loopback, so the tracker
# sees 127.0.0.1; listed as such, a downloader elsewhere would connect to its own loopback.
check_advertise() {
    local what="7 --advertise (peers on the tracker's host, registered over 127.0.0.1)"
    mkdir -p "$WORK/tradv" "$WORK/trlo" "$WORK/h3adv" || { fail "$what: mkdir"; return; }
    head -c $((4 << 20)) /dev/urandom >"$WORK/src/adv.bin"
    head -c $((1 << 20)) /dev/urandom >"$WORK/src/lo.bin"
    cp "$WORK/src/adv.bin" "$WORK/tradv/"
    cp "$WORK/src/lo.bin" "$WORK/trlo/"
    start tracker2 "$NS_TR" "$BIN" tracker --bind 0.0.0.0 --port 8100 --timeout 3
    if ! wait_ready tracker2 10; then
        fail "$what: the tracker on 0.0.0.0:8100 did not start"
        logs tracker2
        return
    fi
    start advpeer "$NS_TR" "$BIN" peer --dir "$WORK/tradv" --port 7400 --bind 0.0.0.0 \
        --tracker 127.0.0.1:8100 --advertise 10.77.0.1 --timeout 3
    start lopeer "$NS_TR" "$BIN" peer --dir "$WORK/trlo" --port 7401 --bind 0.0.0.0 \
        --tracker 127.0.0.1:8100 --timeout 3
    # Both registered: the tracker's own loopback sees both (the advertised one by its LAN
    # address, the other by loopback).
    local deadline=$(($(now_ms) + 20000)) near_adv near_lo
    while :; do
        near_adv=$(ask "$NS_TR" 127.0.0.1 8100 "WHOHAS adv.bin")
        near_lo=$(ask "$NS_TR" 127.0.0.1 8100 "WHOHAS lo.bin")
        [[ $near_adv == "PEERS 10.77.0.1:7400" && $near_lo == "PEERS 127.0.0.1:7401" ]] && break
        if (($(now_ms) > deadline)); then
            fail "$what: from loopback, WHOHAS adv.bin said '${near_adv:-nothing}' and WHOHAS lo.bin '${near_lo:-nothing}' after 20 s"
            logs advpeer lopeer tracker2
            stop advpeer; stop lopeer; stop tracker2
            return
        fi
        sleep 0.1
    done
    # From h3: the advertised address, and no loopback one.
    local far_adv far_lo rc_lo
    far_adv=$(ask "$NS_H3" 10.77.0.1 8100 "WHOHAS adv.bin")
    far_lo=$(ask "$NS_H3" 10.77.0.1 8100 "WHOHAS lo.bin")
    ip netns exec "$NS_H3" timeout 30 "$BIN" get adv.bin --dir "$WORK/h3adv" \
        --tracker 10.77.0.1:8100 --bind 0.0.0.0 --port 0 --timeout 3 \
        </dev/null >"$WORK/get-adv.out" 2>"$WORK/get-adv.err"
    GET_RC=$?
    ip netns exec "$NS_H3" timeout 30 "$BIN" get lo.bin --dir "$WORK/h3adv" \
        --tracker 10.77.0.1:8100 --bind 0.0.0.0 --port 0 --timeout 3 \
        </dev/null >"$WORK/get-lo.out" 2>"$WORK/get-lo.err"
    rc_lo=$?
    if [[ $far_adv != "PEERS 10.77.0.1:7400" ]]; then
        fail "$what: h3 asked WHOHAS adv.bin and got '${far_adv:-nothing}', not PEERS 10.77.0.1:7400"
    elif [[ $far_lo != "ERR not-found lo.bin is held only at loopback"*--advertise* ]]; then
        fail "$what: h3 asked WHOHAS lo.bin and got '${far_lo:-nothing}', not ERR not-found ... --advertise"
    elif ((GET_RC != 0)); then
        fail "$what: get adv.bin on h3 exited $GET_RC"
        logs get-adv advpeer
    elif ! same_file "$WORK/src/adv.bin" "$WORK/h3adv/adv.bin"; then
        fail "$what: the downloaded adv.bin differs from the original"
    elif ((rc_lo == 0)) || [[ -e $WORK/h3adv/lo.bin ]]; then
        fail "$what: get lo.bin on h3 succeeded, yet its only holder is on the tracker's loopback"
    elif grep -q '127\.0\.0\.1' "$WORK/get-lo.out" "$WORK/get-lo.err"; then
        fail "$what: get lo.bin on h3 was handed a loopback address: $(cat "$WORK/get-lo.err")"
    elif ! grep -q -- '--advertise' "$WORK/get-lo.err"; then
        fail "$what: get lo.bin on h3 did not pass on the tracker's --advertise hint: $(cat "$WORK/get-lo.err")"
    else
        pass "$what: h3 got adv.bin via 10.77.0.1:7400, sha1 identical; lo.bin refused: $(head -c 90 "$WORK/get-lo.err" | tr '\n' ' ')"
    fi
    stop advpeer
    stop lopeer
    stop tracker2
}

for check in ${CHECKS:-1 2 3 4 5 6 7}; do
    case $check in
    1) check_cross ;;
    2) check_slow ;;
    3) check_delay ;;
    4) check_cut ;;
    5) check_cluster ;;
    6) check_transmission ;;
    7) check_advertise ;;
    *) fail "no check $check (CHECKS takes numbers from 1 to 7)" ;;
    esac
done

say "$PASSED passed, $FAILED failed"
((FAILED == 0))
