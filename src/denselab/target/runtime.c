/* runtime.c: memcpy, memset and memmove, which gcc may call even in freestanding code
 * (it turns copy loops into them). Plain byte loops: small, and the same on every core. */
#include <stddef.h>

void *memcpy(void *destination, const void *source, size_t n);
void *memmove(void *destination, const void *source, size_t n);
void *memset(void *destination, int value, size_t n);

void *memcpy(void *destination, const void *source, size_t n)
{
    unsigned char *to = destination;
    const unsigned char *from = source;
    while (n--) {
        *to++ = *from++;
    }
    return destination;
}

void *memmove(void *destination, const void *source, size_t n)
{
    unsigned char *to = destination;
    const unsigned char *from = source;
    if (to < from) {
        while (n--) {
            *to++ = *from++;
        }
    } else {
        while (n--) {
            to[n] = from[n];
        }
    }
    return destination;
}

void *memset(void *destination, int value, size_t n)
{
    unsigned char *to = destination;
    while (n--) {
        *to++ = (unsigned char)value;
    }
    return destination;
}
