#!/usr/bin/env bash
# Runs a command inside a built image the way the charts run it, without a container runtime: the image's root
# filesystem mounted read-only in a private mount namespace, a writable tmpfs on /tmp, the image's user, working
# directory and environment. (Where podman/crun work, `podman run --read-only IMAGE …` is the same check.)
#
#   scripts/images/run-rootfs.sh [--bind HOST_DIR:/tmp/SUBDIR] [--entrypoint PROGRAM] IMAGE [NAME=VALUE ...] -- [ARG ...]
#
# ARGs follow the image's entrypoint (if it has one; --entrypoint replaces it). --bind makes a host folder writable
# under /tmp (the only writable place, as in the charts).
# Host networking (a server it starts is reachable on 127.0.0.1). Needs root (mount namespaces, chroot).
set -euo pipefail

bind_host=""
bind_path=""
if [ "${1:-}" = "--bind" ]; then
  bind_host="${2%%:*}"
  bind_path="${2#*:}"
  case "$bind_path" in /tmp/?*) ;; *) echo "run-rootfs.sh: --bind target must be under /tmp" >&2; exit 2 ;; esac
  shift 2
fi
entrypoint_override=""
if [ "${1:-}" = "--entrypoint" ]; then
  entrypoint_override="$2"
  shift 2
fi
image="$1"
shift
extra_env=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  extra_env+=("$1")
  shift
done
[ "${1:-}" = "--" ] && shift

user="$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$image")"
workdir="$(buildah inspect --type image --format '{{.OCIv1.Config.WorkingDir}}' "$image")"
mapfile -t image_env < <(buildah inspect --type image --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$image" | sed '/^$/d')
mapfile -t entrypoint < <(buildah inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$image" | sed '/^$/d')
[ -n "$entrypoint_override" ] && entrypoint=("$entrypoint_override")
[ -n "$user" ] && [ "${user%%:*}" != "0" ] && [ "${user%%:*}" != "root" ] || { echo "run-rootfs.sh: $image runs as root" >&2; exit 3; }

ctr="$(buildah from --quiet --pull-never "$image")"
cleanup() { buildah rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
root="$(buildah mount "$ctr")"

# In a private mount namespace: read-only root, then the kernel filesystems and /tmp on top. unshare, bash, chroot and
# env all exec, so $child is the command itself: a SIGTERM to this script reaches it, and cleanup waits for it.
unshare --mount --propagation private -- /bin/bash -c '
  set -e
  root="$1"; user="$2"; workdir="$3"; bind_host="$4"; bind_path="$5"; shift 5
  mount --bind "$root" "$root"
  mount -o remount,bind,ro "$root"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --rbind /sys "$root/sys"
  mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
  if [ -n "$bind_host" ]; then mkdir -p "$root$bind_path" && mount --bind "$bind_host" "$root$bind_path"; fi
  exec chroot --userspec="$user" "$root" /usr/bin/env -i -C "${workdir:-/}" "$@"
' run-rootfs "$root" "$user" "$workdir" "$bind_host" "$bind_path" "${image_env[@]}" "${extra_env[@]}" "${entrypoint[@]}" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
status=0
while :; do
  wait "$child" && status=0 || status=$?
  kill -0 "$child" 2>/dev/null || break
done
exit "$status"
