#!/bin/sh
# A tenant's job: copies its input to its outputs, says so, then keeps running a while, so that
# another tenant's job runs beside it. Usage: tenant.sh INPUT SECONDS
set -e
busybox cp "$1" copy.bin
printf 'private to this tenant\n' > note.txt
echo '##quern progress 50 "copied"'
busybox sleep "$2"
