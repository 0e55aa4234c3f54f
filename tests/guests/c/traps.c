/* A C guest for the error paths: host traps, host exceptions, bad results,
 * out-of-bounds ranges and stale handles, all reached from C calls.
 * Each export triggers one failure; tests/test_c_guests.py checks the Trap.
 * (Any export that returns at all returns -1: the call should not come back.)
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "funk_test_host.h"

#define EXPORT(name) __attribute__((export_name(#name)))

EXPORT(raise_trap) int32_t raise_trap(void) {
    static const char msg[] = "stopped by the C guest";
    test_trap(msg, strlen(msg));
    return -1;
}

EXPORT(raise_error) int32_t raise_error(int32_t code) {
    test_fail(code);
    return -1;
}

EXPORT(raise_interrupt) int32_t raise_interrupt(void) {
    test_interrupt();
    return -1;
}

EXPORT(bad_result) int32_t bad_result(int32_t kind) { return test_bad_result(kind); }

/* A range past the end of memory (the host must trap, not read). */
EXPORT(out_of_bounds) uint32_t out_of_bounds(void) {
    const uint8_t *end = (const uint8_t *)(__builtin_wasm_memory_size(0) * 65536);
    return test_checksum(end - 4, 8);
}

/* A Ptr<uint64_t> that is not 8-aligned: funk's behaviour is the test's to state. */
EXPORT(misaligned_u64) uint64_t misaligned_u64(void) {
    static uint64_t cells[2] = {0, 0};
    uint8_t *p = (uint8_t *)cells + 1;
    memcpy(p, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    return test_load_u64((uint64_t *)(void *)p);
}

EXPORT(use_after_close) uint32_t use_after_close(void) {
    uint64_t h = test_open_blob((const uint8_t *)"gone", 4);
    test_close_blob(h);
    return test_blob_len(h);
}

EXPORT(bad_status) int32_t bad_status(int32_t code) { return test_status(code); }

EXPORT(bad_color) uint32_t bad_color(uint32_t a) { return test_mix(a, 0); }
