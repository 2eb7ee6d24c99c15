#!/bin/sh
# Bad ioctls are refused with the right errno (see ioctl_abuse.c).
. ../lib/ktap.sh
. ../lib/fvp.sh
fvp_load
exec fvp_ioctl_abuse
