// The one instruction the worker pool's spin-waits need that Swift cannot spell: x86's
// `pause` (a hint that eases the spinning core and the sibling it shares with).
#include <pthread.h>

static inline void mpq_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
