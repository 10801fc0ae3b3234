# Shared by scripts/bench-register and scripts/bench-calls (sourced, not run).
#
# Each bench drives several targets (the switch, Kamailio as the anchor, a
# SIPp stub for the generator's ceiling) with the same SIPp scenario at the
# same rates, interleaved rate by rate so that every target meets the same
# machine load, and judges each step "clean": every call succeeded and SIPp
# retransmitted at most CLEAN_RETRANS_PER_MILLE per mille of the requests it
# sent (its Retransmissions(C) counter; a retransmitted request means an
# answer came later than T1 = 500 ms, or was lost).

CLEAN_RETRANS_PER_MILLE="${CLEAN_RETRANS_PER_MILLE:-1}"

PIDS=()
stop() { # stop one process we started: SIGTERM, then SIGKILL after 5 s
  local p="$1"
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && stop "$p"; done
}
trap cleanup EXIT

free_port() { # a loopback UDP port (and the one two above, for SIPp's media) nobody holds
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))  # above the switch's RTP range (10000-19999)
    if ! ss -Hlun "sport = :$p" 2>/dev/null | grep -q . && ! ss -Hlun "sport = :$((p + 2))" 2>/dev/null | grep -q .; then
      echo "$p"; return
    fi
  done
  echo 0
}
wait_bound() { for _ in $(seq 1 100); do ss -Hlun "sport = :$1" | grep -q . && return 0; sleep 0.05; done; return 1; }

# start_kamailio CFG PORT DIR [-A DEFINE ...]: Kamailio on udp 127.0.0.1:PORT
start_kamailio() {
  local cfg="$1" port="$2" dir="$3"; shift 3
  command -v "$KAMAILIO" >/dev/null || { echo "kamailio not found at $KAMAILIO (apt-get install kamailio)" >&2; exit 2; }
  mkdir -p "$dir"
  "$KAMAILIO" -f "$cfg" -DD -E -w "$dir" -m 512 -M 16 -l "udp:127.0.0.1:$port" "$@" > "$dir/kamailio.log" 2>&1 &
  KAM_PID=$!
  PIDS+=("$KAM_PID")
  wait_bound "$port" || { echo "kamailio did not bind $port:"; cat "$dir/kamailio.log"; exit 1; }
}

# cpu_ticks PID...: user+system clock ticks of these processes and their children
cpu_ticks() {
  local total=0 p t
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" 2>/dev/null; done); do
    t="$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)"
    total=$((total + t))
  done
  echo "$total"
}

# settle PID...: wait (at most 15 s) until these processes are idle, so that a
# target still working off a step's backlog does not slow the next target
settle() {
  local a b
  for _ in $(seq 1 30); do
    a="$(cpu_ticks "$@")"; sleep 0.5; b="$(cpu_ticks "$@")"
    [ $((b - a)) -le 2 ] && return 0
  done
  echo "   (still busy after 15 s: $*)"
}

# The processes of each target whose CPU a step counts (label -> "PID ..."),
# set by the bench script; a target without an entry (the SIPp stub) shows "-".
declare -A TARGET_PIDS

# step LABEL TARGET RATE REQS_PER_CALL SIPP-ARGS...: one SIPp run; prints a row,
# appends "LABEL RATE clean|dirty ok fail retrans p50 p99 cpu_us" to $WORK/steps
step() {
  local label="$1" target="$2" rate="$3" per_call="$4"; shift 4
  local calls=$((rate * STEP_SECS)) dir="$WORK/$label-$rate" rc=0
  local pids="${TARGET_PIDS[$label]:-}" t0=0 t1=0 cpu=-
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  [ -z "$pids" ] || t0="$(cpu_ticks $pids)"
  (cd "$dir" && sipp "$@" "$target" -t u1 -i 127.0.0.1 -p "$(free_port)" -cp "$(free_port)" -nostdin \
      -r "$rate" -rp 1000 -m "$calls" -buff_size 4194304 \
      -timeout $((STEP_SECS * 4 + 30))s \
      -trace_stat -fd 1 -trace_rtt -rtt_freq 1000 -trace_err -error_file errors.log \
      > sipp.out 2>&1) || rc=$?
  # shellcheck disable=SC2086
  [ -z "$pids" ] || t1="$(cpu_ticks $pids)"
  local stat rtt succ fail retrans elapsed p50 p99 achieved pct clean
  stat="$(ls "$dir"/*_.csv 2>/dev/null | grep -v '_rtt.csv' | head -1 || true)"
  rtt="$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1 || true)"
  if [ -z "$stat" ]; then
    printf '%-10s %7s  sipp produced no statistics (exit %s); see %s\n' "$label" "$rate" "$rc" "$dir"
    echo "$label $rate dirty 0 $calls 0 - - -" >> "$WORK/steps"
    return
  fi
  read -r succ fail retrans elapsed < <(awk -F';' 'NR==1{for(i=1;i<=NF;i++){h[$i]=i}} END{print $h["SuccessfulCall(C)"], $h["FailedCall(C)"], $h["Retransmissions(C)"], $h["ElapsedTime(C)"]}' "$stat")
  achieved="$(echo "$elapsed" | awk -F: -v n="$((succ + fail))" '{s=$1*3600+$2*60+$3; if (s<1) s=1; printf "%d", n/s}')"
  if [ -n "$rtt" ]; then
    read -r p50 p99 < <(awk -F';' 'NR>1{print $2}' "$rtt" | sort -n | awk '{v[NR]=$1} END{if(NR==0){print "- -"; exit} i50=int(NR*0.50); if(i50<1)i50=1; i99=int(NR*0.99); if(i99<1)i99=1; printf "%.1f %.1f\n", v[i50], v[i99]}')
  else
    p50=-; p99=-
  fi
  pct="$(awk -v r="$retrans" -v n="$((calls * per_call))" 'BEGIN{printf "%.3f", 100*r/n}')"
  # CPU of the target per successful call, in microseconds (ticks of 1/CLK_TCK s).
  if [ -n "$pids" ] && [ "$succ" -gt 0 ]; then
    cpu="$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$succ" 'BEGIN{printf "%.0f", t * 1000000 / hz / n}')"
  fi
  clean=dirty
  if [ "$fail" = "0" ] && [ "$succ" = "$calls" ] && [ $((retrans * 1000)) -le $((calls * per_call * CLEAN_RETRANS_PER_MILLE)) ]; then
    clean=clean
  fi
  printf '%-10s %7s %9s %9s %7s %8s %8s %8s %8s %8s  %s\n' "$label" "$rate" "$achieved" "$succ" "$fail" "$retrans" "$pct" "$p50" "$p99" "$cpu" "$clean"
  echo "$label $rate $clean $succ $fail $retrans $p50 $p99 $cpu" >> "$WORK/steps"
}

header() {
  printf '%-10s %7s %9s %9s %7s %8s %8s %8s %8s %8s  %s\n' "target" "rate/s" "achieved" "ok" "failed" "retrans" "retr %" "p50 ms" "p99 ms" "cpu us" "verdict"
}

# collapsed LABEL: whether more than half the calls failed at some step
collapsed() {
  awk -v l="$1" '$1==l && $4*2 < ($4+$5) {found=1} END{exit !found}' "$WORK/steps" 2>/dev/null
}

# best LABEL: the highest clean rate (0 if none)
best() {
  awk -v l="$1" '$1==l && $3=="clean" && $2>b {b=$2} END{print b+0}' "$WORK/steps"
}

# summary LABEL-OF-SWITCH LABEL-OF-ANCHOR LABEL-OF-CEILING FACTOR-TARGET
summary() {
  local sw an ce top
  sw="$(best "$1")"; an="$(best "$2")"; ce="$(best "$3")"
  top="$(echo "$RATES" | tr ' ' '\n' | sort -n | tail -1)"
  echo "== summary (clean: zero failed calls and at most ${CLEAN_RETRANS_PER_MILLE} per mille of requests retransmitted)"
  echo "highest clean rate: $1 ${sw}/s, $2 ${an}/s, $3 ${ce}/s (the generator's ceiling)"
  if [ "$an" -gt 0 ]; then
    echo "ratio $1/$2: $(awk -v a="$sw" -v b="$an" 'BEGIN{printf "%.2f", a/b}') (target >= $4)"
  else
    echo "ratio $1/$2: undefined ($2 had no clean step)"
  fi
  # CPU per call where both were clean: a figure the generator's ceiling
  # does not cap (the cores are shared with SIPp, so rates saturate early).
  awk -v a="$1" -v b="$2" '$3=="clean" && $9!="-" {c[$1" "$2]=$9; r[$2]=1}
    END{n=0; sa=0; sb=0; for (k in r) if ((a" "k) in c && (b" "k) in c) {n++; sa+=c[a" "k]; sb+=c[b" "k]}
        if (n) printf "cpu per call over the %d rates both were clean: %s %.0f us, %s %.0f us, ratio %s/%s %.2f (lower is cheaper)\n", n, a, sa/n, b, sb/n, a, b, sa/sb
        else print "cpu per call: no rate where both were clean"}' "$WORK/steps"
  for l in "$1" "$2"; do
    local b; b="$(best "$l")"
    if [ "$b" -gt 0 ] && [ "$ce" -gt 0 ] && [ "$b" -ge "$ce" ]; then
      echo "note: $l reached the generator's ceiling (${ce}/s): its figure is a lower bound"
    elif [ "$b" = "$top" ]; then
      echo "note: $l was clean at the highest rate tried (${top}/s): its figure is a lower bound"
    fi
  done
}
