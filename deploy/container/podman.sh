# Sourced by build.sh and the container tests: podman as this kind of machine needs it.
#
# - runc, not crun: crun refuses hosts with cgroup v1 and v2 mounted side by side ("cgroups
#   in hybrid mode not supported"), which is what these machines have.
# - explicit ulimits within this shell's hard limits: podman's defaults raise them, which
#   needs CAP_SYS_RESOURCE, and the runtime is refused ("setrlimit ... not permitted").
#   Podman itself starts the runtime with at most 32768 processes.

pc() { podman --runtime runc "$@"; }

pc_ulimits() {
  local nofile nproc
  nofile=$(ulimit -Hn); [[ "$nofile" == unlimited ]] && nofile=1048576
  nproc=$(ulimit -Hu); [[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
  printf -- '--ulimit=nofile=%s:%s --ulimit=nproc=%s:%s\n' "$nofile" "$nofile" "$nproc" "$nproc"
}
