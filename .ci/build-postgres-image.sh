#!/usr/bin/env bash
# Build pgrehearse/postgres:MAJOR from Debian packages, offline from any
# container registry: debootstrap a minimal Debian with postgresql-MAJOR and
# `docker import` it with an entrypoint that gives the official `postgres`
# image's interface:
#   env POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
#   POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default $POSTGRES_USER),
#   PGDATA, POSTGRES_INITDB_ARGS; port 5432, listen_addresses '*',
#   scram-sha-256 for host connections; "database system is ready to accept
#   connections" once on stdout (the init-time server) then once on stderr
#   (the real one); arguments starting with '-' go to postgres (`-c a=b`).
#
# Usage: .ci/build-postgres-image.sh MAJOR      (15 = bookworm, 17 = trixie, 18 = sid)
# The mirror is read from this machine's apt sources. An existing image is kept.
set -euo pipefail

major="${1:?usage: $0 MAJOR (15, 17 or 18)}"
case "$major" in
  15) suite=bookworm ;;
  17) suite=trixie ;;
  18) suite=sid ;;
  *) echo "no Debian suite known for PostgreSQL $major (15, 17 or 18)" >&2; exit 2 ;;
esac
image="pgrehearse/postgres:$major"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image already exists; skipping the build"
  exit 0
fi
for tool in debootstrap docker tar; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install debootstrap docker.io)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

# The Debian mirror this machine already uses: the first non-security URI in
# the deb822 .sources files or in sources.list.
mirror_from_sources() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      /^[[:space:]]*$/ { if (uri != "" && !sec && deb) { print uri; exit } uri=""; sec=0; deb=0; next }
      /^URIs:/   { uri=$2 }
      /^Types:/  { if ($0 ~ /[[:space:]]deb([[:space:]]|$)/) deb=1 }
      /^Suites:/ { if ($0 ~ /security/) sec=1 }
      END { if (uri != "" && !sec && deb) print uri }
    ' "$f" | grep -v -i security | head -n1 || true
  done
  if [ -f /etc/apt/sources.list ]; then
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /=/) { print $i; break } }' \
      /etc/apt/sources.list | grep -v -i security | head -n1 || true
  fi
}
mirror="${PGREHEARSE_DEBIAN_MIRROR:-$(mirror_from_sources | head -n1)}"
mirror="${mirror%/}"
[ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt/sources.list{,.d/*.sources}" >&2; exit 1; }
echo "building $image from Debian $suite ($mirror)"

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
keyring_opt=()
[ -f "$keyring" ] && keyring_opt=(--keyring="$keyring")

work="$(mktemp -d /tmp/pgrehearse-image.XXXXXX)"
rootfs="$work/rootfs"
cleanup() {
  # debootstrap mounts /proc and /sys in the target: never delete through a mount.
  local m
  for m in $(awk -v r="$rootfs" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

start=$SECONDS
debootstrap --variant=minbase "${keyring_opt[@]}" \
  --include="postgresql-$major,util-linux,ca-certificates" \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 40 "$work/debootstrap.log" >&2
  # debootstrap keeps its own log in the target
  tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
  exit 1
}
echo "debootstrap took $((SECONDS - start))s"

# No default cluster: the entrypoint makes one per container, in PGDATA.
rm -rf "$rootfs/var/lib/postgresql/$major" "$rootfs/etc/postgresql/$major"
# Room for the data directory and the socket, owned by postgres.
chroot "$rootfs" sh -c '
  set -e
  install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
  install -d -o postgres -g postgres -m 2775 /run/postgresql
  install -d -m 0755 /docker-entrypoint-initdb.d
'
# Slimmer: caches, docs, man pages, translations.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
  "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log "$rootfs"/debootstrap

cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'ENTRYPOINT'
#!/bin/bash
# The official postgres image's interface, for an image built from Debian packages.
set -Eeo pipefail
export PATH="/usr/lib/postgresql/$PG_MAJOR/bin:$PATH"
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

# `docker run image -c a=b`: options for postgres.
if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi
shift

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    cat >&2 <<'EOF'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
EOF
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as upstream
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 \
    --locale=C.UTF-8 --auth-local=trust --auth-host="$auth" $POSTGRES_INITDB_ARGS
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # A socket-only server for the init scripts; pg_ctl sends its log to stdout.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --no-password)
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; . "$f" ;;
      *.sql) echo "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo
  echo 'PostgreSQL init process complete; ready for start up.'
  echo
fi

exec postgres "$@"
ENTRYPOINT
chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"

tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change "ENV PG_MAJOR=$major" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PGDATA=/var/lib/postgresql/data' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'USER postgres' \
  --change 'WORKDIR /var/lib/postgresql' \
  --change 'EXPOSE 5432' \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["postgres"]' \
  --message "PostgreSQL $major from Debian $suite packages (pgrehearse .ci/build-postgres-image.sh)" \
  - "$image"
echo "built $image in $((SECONDS - start))s"
