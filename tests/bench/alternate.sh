# alternate.sh: sourced by forward.sh and train.sh, which compare safecl with its PyTorch peer.
# alternate R PREFIX runs the caller's run_ours and run_peer functions alternately R times,
# prints each summary line they print, the load before and after, and one line
# "summary PREFIX repeats=R ours_img_per_s=... peer_img_per_s=... ratio=... best ... rss ...":
# the median over runs of the mean img/s, the best single iteration of any run, their ratios,
# and the largest peak RSS of each side; when both sides print cpu_s_per_iter (the CPU time of a
# step, which other processes on the machine disturb far less than its wall time), also the
# median of each and cpu_ratio = peer / ours.
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2"; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
largest() { sort -g | tail -1; }

alternate() {
  local repeat="$1" prefix="$2" ours peer r
  local ours_ips=() peer_ips=() ours_best=() peer_best=() ours_rss=() peer_rss=() ours_cpu=()
  local peer_cpu=() cpu
  echo "load before: $(uptime)"
  for ((r = 1; r <= repeat; r++)); do
    ours=$(run_ours)
    echo "ours: $ours"
    peer=$(OMP_WAIT_POLICY=PASSIVE run_peer)
    echo "peer: $peer"
    ours_ips+=("$(field img_per_s "$ours")") ours_rss+=("$(field peak_rss_mb "$ours")")
    peer_ips+=("$(field img_per_s "$peer")") peer_rss+=("$(field peak_rss_mb "$peer")")
    ours_best+=("$(field best_img_per_s "$ours")") peer_best+=("$(field best_img_per_s "$peer")")
    ours_cpu+=("$(field cpu_s_per_iter "$ours")") peer_cpu+=("$(field cpu_s_per_iter "$peer")")
  done
  echo "load after:  $(uptime)"
  cpu=""
  if [[ -n "$(printf %s "${ours_cpu[@]}")" && -n "$(printf %s "${peer_cpu[@]}")" ]]; then
    cpu=$(awk -v o="$(printf '%s\n' "${ours_cpu[@]}" | median)" \
              -v p="$(printf '%s\n' "${peer_cpu[@]}" | median)" \
              'BEGIN { printf " ours_cpu_s_per_iter=%.3f peer_cpu_s_per_iter=%.3f cpu_ratio=%.3f", o, p, p / o }')
  fi
  awk -v o="$(printf '%s\n' "${ours_ips[@]}" | median)" \
      -v p="$(printf '%s\n' "${peer_ips[@]}" | median)" \
      -v ob="$(printf '%s\n' "${ours_best[@]}" | largest)" \
      -v pb="$(printf '%s\n' "${peer_best[@]}" | largest)" \
      -v orss="$(printf '%s\n' "${ours_rss[@]}" | largest)" \
      -v prss="$(printf '%s\n' "${peer_rss[@]}" | largest)" -v pre="$prefix" -v r="$repeat" \
      -v cpu="$cpu" 'BEGIN {
    printf "summary %s repeats=%s ours_img_per_s=%.3f peer_img_per_s=%.3f ratio=%.3f " \
           "ours_best_img_per_s=%.3f peer_best_img_per_s=%.3f best_ratio=%.3f " \
           "ours_peak_rss_mb=%.1f peer_peak_rss_mb=%.1f%s\n", pre, r, o, p, o / p, ob, pb, ob / pb,
           orss, prss, cpu
  }'
}
