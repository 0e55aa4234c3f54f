/* Ending the program: proc_exit with the code in argv[2], from deep inside
 * nested calls, after output on stdout and stderr; proc_raise; a trap;
 * returning a nonzero status from main (wasi-libc turns it into proc_exit).
 *
 *   wasi_exit exit N     proc_exit(N) from a nested call
 *   wasi_exit return N   return N from main
 *   wasi_exit raise SIG  proc_raise(SIG), then return 0 (if it returned)
 *   wasi_exit trap       unreachable
 *   wasi_exit stdin      copy stdin to stdout and stderr, proc_exit(length % 100)
 */
#include "guest.h"

#include <stdlib.h>

/* proc_raise is in wasi_snapshot_preview1 but not in wasi-libc's header. */
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_raise")))
extern uint32_t raw_proc_raise(uint32_t sig);

static int depth_exit(int depth, uint32_t code) {
    if (depth == 0) {
        say("exiting with %u\n", (unsigned)code);
        out_fd(2, "stderr before exit\n");
        __wasi_proc_exit(code);
    }
    return depth_exit(depth - 1, code) + 1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    uint32_t n = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 0;
    say("mode %s\n", mode);
    if (strcmp(mode, "exit") == 0) {
        int r = depth_exit(10, n);
        say("not reached %d\n", r);
    } else if (strcmp(mode, "return") == 0) {
        out_fd(2, "returning %u\n", (unsigned)n);
        return (int)n;
    } else if (strcmp(mode, "raise") == 0) {
        uint32_t e = raw_proc_raise(n);
        say("proc_raise returned %u\n", (unsigned)e);
        return 0;
    } else if (strcmp(mode, "trap") == 0) {
        out_fd(2, "about to trap\n");
        __builtin_trap();
    } else if (strcmp(mode, "stdin") == 0) {
        static char buf[4096];
        size_t total = 0;
        ssize_t r;
        while ((r = read(0, buf, sizeof buf)) > 0) {
            total += (size_t)r;
            (void)!write(1, buf, (size_t)r);
            (void)!write(2, buf, (size_t)r);
        }
        say("\nread %zu bytes, last read %zd\n", total, r);
        __wasi_proc_exit((uint32_t)(total % 100));
    }
    say("unknown mode\n");
    return 2;
}
