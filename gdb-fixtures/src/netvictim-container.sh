#!/bin/bash
# Runs netvictim (built as /tmp/net/netvictim) as a container would: its own
# mount namespace (run this under `unshare -m --propagation private`), a
# tmpfs root with /usr bound read-only, /proc, a /dev with null and a private
# devpts, a tmpfs /tmp. The host's mounts are gone after pivot_root. Then:
#   criu dump -t PID -D images --tcp-established --network-lock skip \
#     --external 'mnt[/dev/null]:devnull' --external 'mnt[/usr]:usr'
set -e
# Descriptors the calling shell may have passed on stay out of the dump.
exec 10>&- 251>&- 2>/dev/null || true
R=/tmp/net/root
mkdir -p $R
mount -t tmpfs -o size=16m,mode=755 rootfs $R
mkdir -p $R/proc $R/dev $R/tmp $R/usr $R/app $R/old
ln -s usr/lib $R/lib; ln -s usr/lib64 $R/lib64; ln -s usr/bin $R/bin
mount --bind /usr $R/usr
mount -o remount,bind,ro $R/usr
cp /tmp/net/netvictim $R/app/netvictim
mount -t proc proc $R/proc
mount -t tmpfs -o size=64k,mode=755 dev $R/dev
touch $R/dev/null
mount --bind /dev/null $R/dev/null
mkdir $R/dev/pts
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $R/dev/pts
ln -s pts/ptmx $R/dev/ptmx
mount -t tmpfs -o size=1m,mode=1777 tmp $R/tmp
cd $R
pivot_root . old
umount -l /old
rmdir /old
cd /app
exec env -i PATH=/usr/bin HOME=/ API_TOKEN=NET_ENV_TOKEN_5150 /app/netvictim < /dev/null > /tmp/out.txt 2>&1
