#!/bin/sh
# Regenerates the OpenPGP fixtures of trust::pgp's and trust::keys' tests with GnuPG 2.2
# (run from this directory: `sh gen.sh`). The outputs are checked in; nothing runs this in CI.
set -eu
G=$(mktemp -d)
trap 'rm -rf "$G"' EXIT
export GNUPGHOME="$G"
gpg() { command gpg --batch --quiet --no-tty --pinentry-mode loopback --passphrase '' "$@"; }
fpr() { gpg --with-colons --list-keys "$1" | awk -F: '/^fpr/ {print $10; exit}'; }

printf 'hello, signed world\n' > data.txt
printf '{"critical":{"identity":{"docker-reference":"example.com/app:v1"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"atomic container signature"},"optional":{}}' > claim.json

# ed25519, primary key signs
gpg --quick-gen-key 'Ed Signer <ed@example.com>' ed25519 sign never
gpg --armor --export ed@example.com > ed25519.pub.asc
gpg --export ed@example.com > ed25519.pub.gpg
gpg --local-user ed@example.com --detach-sign --armor -o data.txt.ed25519.asc data.txt
gpg --local-user ed@example.com --detach-sign -o data.txt.ed25519.sig data.txt
gpg --local-user ed@example.com --sign -o claim.ed25519.sig claim.json
gpg --local-user ed@example.com --sign --compress-algo none -o claim.ed25519.plain.sig claim.json
gpg --local-user ed@example.com --sign --armor -o claim.ed25519.asc claim.json

# rsa3072, primary key signs
gpg --quick-gen-key 'Rsa Signer <rsa@example.com>' rsa3072 sign never
gpg --armor --export rsa@example.com > rsa3072.pub.asc
gpg --local-user rsa@example.com --detach-sign --armor -o data.txt.rsa3072.asc data.txt
gpg --local-user rsa@example.com --sign -o claim.rsa3072.sig claim.json

# certification-only primary with an ed25519 signing subkey
gpg --quick-gen-key 'Sub Signer <sub@example.com>' ed25519 cert never
SUBP=$(fpr sub@example.com)
gpg --quick-add-key "$SUBP" ed25519 sign never
gpg --armor --export sub@example.com > subkey.pub.asc
gpg --local-user sub@example.com --detach-sign --armor -o data.txt.subkey.asc data.txt
gpg --local-user sub@example.com --sign -o claim.subkey.sig claim.json

# a key that expired in 2021; it signed in 2020, while it was valid
gpg --faked-system-time 20200101T000000 --quick-gen-key 'Old Signer <old@example.com>' ed25519 sign 1y
gpg --armor --export old@example.com > expired.pub.asc
gpg --faked-system-time 20200601T000000 --local-user old@example.com --detach-sign --armor -o data.txt.expired.asc data.txt

# a revoked key (a revocation certificate imported after it signed)
gpg --quick-gen-key 'Revoked Signer <rev@example.com>' ed25519 sign never
REVP=$(fpr rev@example.com)
gpg --local-user rev@example.com --detach-sign --armor -o data.txt.revoked.asc data.txt
# gpg wrote a revocation certificate when it made the key; its armor line is escaped with ':'
sed 's/^://' "$G/openpgp-revocs.d/$REVP.rev" > "$G/rev.asc"
gpg --import "$G/rev.asc"
gpg --armor --export rev@example.com > revoked.pub.asc

# a certification-only primary whose signing subkey is revoked
gpg --quick-gen-key 'Revoked Sub <revsub@example.com>' ed25519 cert never
RSP=$(fpr revsub@example.com)
gpg --quick-add-key "$RSP" ed25519 sign never
gpg --local-user revsub@example.com --detach-sign --armor -o data.txt.revsub.asc data.txt
printf 'key 1\nrevkey\ny\n0\n\ny\nsave\n' | command gpg --batch --no-tty --pinentry-mode loopback \
  --passphrase '' --command-fd 0 --status-fd 2 --edit-key "$RSP" 2>/dev/null
gpg --armor --export revsub@example.com > revoked-subkey.pub.asc

# all public keys in one export
gpg --armor --export ed@example.com rsa@example.com > keyring.pub.asc
# a secret key, which must not be taken for a public one
gpg --armor --export-secret-keys ed@example.com > ed25519.sec.asc

for k in ed@example.com rsa@example.com sub@example.com old@example.com rev@example.com revsub@example.com; do
  echo "$k $(fpr $k)"
done > fingerprints.txt
