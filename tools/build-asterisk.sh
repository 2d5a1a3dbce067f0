#!/usr/bin/env bash
# Build (once) a Debian sid chroot holding Asterisk 22 for tests and the demo.
# Reused when it already exists. Location: $AGI_CAMPAIGN_CHROOT or ~/.cache/agi-campaign/asterisk-sid.
set -euo pipefail
DIR="${AGI_CAMPAIGN_CHROOT:-$HOME/.cache/agi-campaign/asterisk-sid}"
if [ -x "$DIR/usr/sbin/asterisk" ] && [ -f "$DIR/.agi-campaign-ready" ]; then
  echo "asterisk chroot ready: $DIR"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
debootstrap --variant=minbase --include=asterisk,asterisk-core-sounds-en-gsm sid "$DIR" >"$DIR.log" 2>&1 \
  || { echo "debootstrap failed, see $DIR.log" >&2; tail -20 "$DIR.log" >&2; exit 1; }
touch "$DIR/.agi-campaign-ready"
echo "asterisk chroot built: $DIR"
