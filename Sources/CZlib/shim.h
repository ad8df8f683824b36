// zlib (Debian's zlib1g-dev) for PNG encoding and decoding on the host.
#include <zlib.h>
