#!/usr/bin/env bash
# Builds airlock's container image from scratch with buildah, without a registry or network:
#
#   deploy/image/build.sh BINARY [TAG]
#
# BINARY is an `airlock` executable built for this machine (e.g. target/release/airlock); TAG
# defaults to localhost/airlock:VERSION. The image holds exactly:
#   /usr/local/bin/airlock                     the binary
#   the shared libraries `ldd BINARY` names, and the dynamic loader, at the paths ldd names
#   /etc/ssl/certs/ca-certificates.crt         CA roots (webhooks, OIDC JWKS, S3 over https)
#   /etc/passwd, /etc/group, /etc/nsswitch.conf  root and the non-root user airlock (65532)
#   /data                                      the data directory, a volume owned by airlock, 0700
#   /tmp                                       1777, empty
# It runs as 65532:65532, exposes 5000, and its command is
#   airlock serve --data-dir /data --listen 0.0.0.0:5000 --self-signed
# (TLS by default: plaintext off loopback is refused without --insecure-listen; see
# docs/deploy.md to serve your own certificate or run behind a TLS-terminating proxy).
#
# Environment:
#   AIRLOCK_IMAGE_SOURCE   the org.opencontainers.image.source label (default: the git
#                          remote `origin` of this checkout; unset and no remote: no label)
#   AIRLOCK_IMAGE_REVISION the org.opencontainers.image.revision label (default: git HEAD)
#   SOURCE_DATE_EPOCH      the image's creation time and every file's time (default: the time
#                          of git HEAD's commit), so the same inputs give the same image digest
#   CA_BUNDLE              the CA roots to copy (default /etc/ssl/certs/ca-certificates.crt)
#   buildah's own variables (CONTAINERS_STORAGE_CONF, ...) choose where the image is stored.
#
# Prints the image ID on the last line of stdout.
set -euo pipefail

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
  echo "usage: $0 BINARY [TAG]" >&2
  exit 2
fi
binary=$(realpath "$1")
if [ ! -x "$binary" ]; then
  echo "$0: $1 is not an executable file" >&2
  exit 2
fi
for tool in buildah ldd realpath; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is not installed (scripts/setup installs it)" >&2; exit 2; }
done

repo=$(cd "$(dirname "$0")/../.." && pwd)
uid=65532
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [ ! -s "$ca_bundle" ]; then
  echo "$0: no CA roots at $ca_bundle (install ca-certificates, or set CA_BUNDLE)" >&2
  exit 2
fi

# `airlock --version` prints "airlock 0.1.0".
version=$("$binary" --version | awk '{print $2}')
if [ -z "$version" ]; then
  echo "$0: $binary --version printed no version" >&2
  exit 2
fi
tag=${2:-localhost/airlock:$version}
revision=${AIRLOCK_IMAGE_REVISION:-$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)}
source_url=${AIRLOCK_IMAGE_SOURCE:-$(git -C "$repo" remote get-url origin 2>/dev/null || true)}
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

staging=$(mktemp -d)
container=""
cleanup() {
  rm -rf "$staging"
  if [ -n "$container" ]; then buildah rm "$container" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# The file tree, assembled here and copied in as one layer.
root="$staging/root"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
install -m 0755 "$binary" "$root/usr/local/bin/airlock"
install -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"

# Exactly the libraries ldd names: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
# the loader "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file. Each is copied (links
# followed) to the path ldd names, which is the path the loader looks for.
ldd_output=$(ldd "$binary" 2>&1 || true)
libraries=$(awk '
  $2 == "=>" && $3 ~ /^\// { print $3; next }
  $1 ~ /^\// { print $1 }
' <<<"$ldd_output")
if [ -z "$libraries" ] && ! grep -q "statically linked\|not a dynamic executable" <<<"$ldd_output"; then
  echo "$0: cannot read ldd's output for $binary:" >&2
  echo "$ldd_output" >&2
  exit 1
fi
for library in $libraries; do
  mkdir -p "$root$(dirname "$library")"
  cp -L "$library" "$root$library"
  chmod 0755 "$root$library"
done
if grep -q "not found" <<<"$ldd_output"; then
  echo "$0: ldd cannot find every library of $binary:" >&2
  echo "$ldd_output" >&2
  exit 1
fi

cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
airlock:x:$uid:$uid:airlock:/data:/sbin/nologin
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
airlock:x:$uid:
EOF
# Name lookups (S3 endpoints, webhook receivers, OIDC issuers) through /etc/hosts, then DNS;
# glibc has both built in.
echo "hosts: files dns" >"$root/etc/nsswitch.conf"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"
mkdir -p "$staging/volume/data"

container=$(buildah from --quiet scratch)
buildah copy --quiet "$container" "$root" / >/dev/null
buildah copy --quiet --chown "$uid:$uid" --chmod 0700 "$container" "$staging/volume" / >/dev/null

labels=(
  --label "org.opencontainers.image.title=airlock"
  --label "org.opencontainers.image.description=Secure artifact promotion pipeline: an OCI registry with policy-gated stages"
  --label "org.opencontainers.image.version=$version"
  --label "org.opencontainers.image.revision=$revision"
  --label "org.opencontainers.image.created=$created"
  --label "org.opencontainers.image.licenses=Apache-2.0"
)
if [ -n "$source_url" ]; then
  labels+=(--label "org.opencontainers.image.source=$source_url")
else
  echo "$0: note: no git remote and no AIRLOCK_IMAGE_SOURCE: the image has no source label" >&2
fi

buildah config \
  "${labels[@]}" \
  --user "$uid:$uid" \
  --workingdir /data \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --volume /data \
  --port 5000/tcp \
  --stop-signal SIGTERM \
  --entrypoint '["/usr/local/bin/airlock"]' \
  --cmd '["serve", "--data-dir", "/data", "--listen", "0.0.0.0:5000", "--self-signed"]' \
  "$container"

buildah commit --quiet --format oci --timestamp "$epoch" "$container" "$tag"
