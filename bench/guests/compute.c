/* A compute-heavy guest for bench/limits.py: the cost of the runtime's fuel checks.
 *
 * One export, run(kernel, n), runs one of five kernels sized by n and returns
 * a checksum of its result, >= 0 (so the benchmark can check that the metered
 * module computes exactly what the original does), or -1 if the kernel failed:
 *
 *   0 sha256   SHA-256 of a 64 KiB buffer, n times, each digest feeding the next
 *              (straight-line integer code in one loop: few checks, long blocks)
 *   1 sieve    sieve of Eratosthenes over n bytes, returns the number of primes
 *              (tight inner loops of 4-5 instructions: the metering's worst case)
 *   2 nbody    16 bodies under gravity, n time steps (f64 with sqrt and division,
 *              a short inner loop per pair)
 *   3 sort     quicksort of n pseudo-random u32 (recursive calls: checks at
 *              function entries as well as loops)
 *   4 interp   a small register-machine interpreter running a Collatz search
 *              over 1..n (a switch dispatch loop, as a scripting engine's)
 *
 * Built by scripts/build-guests with wasi-libc but no start files and no entry
 * point (-nostartfiles -Wl,--no-entry): libc contributes memset/memcpy only, and
 * the module imports nothing at all, so it instantiates with no host.  Memory
 * beyond the static data is a bump arena over __heap_base, grown with
 * memory.grow as a kernel needs it and reused by the next call.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(#name)))

/* -- memory --------------------------------------------------------------------- */

/* Set by a kernel that cannot do its work (memory would not grow, wrong result). */
static int failed;

extern unsigned char __heap_base;

/* Scratch memory for one call: [__heap_base, __heap_base + bytes), grown as needed.
 * Returns NULL if memory cannot grow that far. */
static void *arena(size_t bytes) {
    uintptr_t base = ((uintptr_t)&__heap_base + 15) & ~(uintptr_t)15;
    uintptr_t end = base + bytes;
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
    if (end < base) return NULL;
    if (end > have) {
        size_t pages = (end - have + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
    }
    return (void *)base;
}

/* xorshift32: deterministic input data, the same on every engine */
static uint32_t xorshift(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/* -- 0: SHA-256 (FIPS 180-4) ---------------------------------------------------- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16
               | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g))
                      + K256[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

/* The digest of data[0..len) into out (32 bytes). */
static void sha256(const unsigned char *data, size_t len, unsigned char out[32]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t full = len & ~(size_t)63;
    for (size_t i = 0; i < full; i += 64) sha256_block(h, data + i);
    unsigned char tail[128];
    size_t rest = len - full;
    memcpy(tail, data + full, rest);
    tail[rest] = 0x80;
    size_t padded = rest + 9 <= 64 ? 64 : 128;
    memset(tail + rest + 1, 0, padded - rest - 1);
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[padded - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < padded; i += 64) sha256_block(h, tail + i);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

#define SHA_BUFFER 65536

static int64_t kernel_sha256(int32_t n) {
    unsigned char *buf = arena(SHA_BUFFER);
    if (!buf) return failed = 1;
    uint32_t state = 0x9e3779b9;
    for (size_t i = 0; i < SHA_BUFFER; i++) buf[i] = (unsigned char)xorshift(&state);
    unsigned char digest[32];
    for (int32_t r = 0; r < n; r++) {
        sha256(buf, SHA_BUFFER, digest);
        memcpy(buf, digest, sizeof digest);  /* the next round hashes this one's result */
    }
    int64_t sum = 0;
    for (int i = 0; i < 8; i++) sum = sum << 8 | digest[i];
    return sum;
}

/* -- 1: sieve of Eratosthenes --------------------------------------------------- */

static int64_t kernel_sieve(int32_t n) {
    if (n < 2) return 0;
    unsigned char *composite = arena((size_t)n);
    if (!composite) return failed = 1;
    memset(composite, 0, (size_t)n);
    for (uint32_t i = 2; (uint64_t)i * i < (uint32_t)n; i++)
        if (!composite[i])
            for (uint32_t j = i * i; j < (uint32_t)n; j += i) composite[j] = 1;
    int64_t count = 0;
    for (int32_t i = 2; i < n; i++) count += !composite[i];
    return count;
}

/* -- 2: n-body ------------------------------------------------------------------ */

#define BODIES 16

typedef struct {
    double x, y, z, vx, vy, vz, mass;
} Body;

static int64_t kernel_nbody(int32_t steps) {
    Body b[BODIES];
    uint32_t state = 12345;
    for (int i = 0; i < BODIES; i++) {  /* positions in [-8, 8), small velocities */
        b[i].x = (double)(xorshift(&state) >> 8) / (1 << 24) * 16 - 8;
        b[i].y = (double)(xorshift(&state) >> 8) / (1 << 24) * 16 - 8;
        b[i].z = (double)(xorshift(&state) >> 8) / (1 << 24) * 16 - 8;
        b[i].vx = (double)(xorshift(&state) >> 8) / (1 << 24) - 0.5;
        b[i].vy = (double)(xorshift(&state) >> 8) / (1 << 24) - 0.5;
        b[i].vz = (double)(xorshift(&state) >> 8) / (1 << 24) - 0.5;
        b[i].mass = 1 + (double)(xorshift(&state) >> 8) / (1 << 24);
    }
    const double dt = 0.001, soft = 0.01;
    for (int32_t s = 0; s < steps; s++) {
        for (int i = 0; i < BODIES; i++)
            for (int j = i + 1; j < BODIES; j++) {
                double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
                double d2 = dx * dx + dy * dy + dz * dz + soft;
                double mag = dt / (d2 * __builtin_sqrt(d2));
                b[i].vx -= dx * b[j].mass * mag;
                b[i].vy -= dy * b[j].mass * mag;
                b[i].vz -= dz * b[j].mass * mag;
                b[j].vx += dx * b[i].mass * mag;
                b[j].vy += dy * b[i].mass * mag;
                b[j].vz += dz * b[i].mass * mag;
            }
        for (int i = 0; i < BODIES; i++) {
            b[i].x += dt * b[i].vx;
            b[i].y += dt * b[i].vy;
            b[i].z += dt * b[i].vz;
        }
    }
    double energy = 0;  /* kinetic + potential: the checksum */
    for (int i = 0; i < BODIES; i++) {
        energy += 0.5 * b[i].mass * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
        for (int j = i + 1; j < BODIES; j++) {
            double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
            energy -= b[i].mass * b[j].mass / __builtin_sqrt(dx * dx + dy * dy + dz * dz + soft);
        }
    }
    return (int64_t)(energy * 1e9);
}

/* -- 3: quicksort --------------------------------------------------------------- */

static void insertion_sort(uint32_t *a, size_t n) {
    for (size_t i = 1; i < n; i++) {
        uint32_t v = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
        a[j] = v;
    }
}

static void swap(uint32_t *a, uint32_t *b) {
    uint32_t t = *a;
    *a = *b;
    *b = t;
}

/* Recurse into the smaller side, loop on the larger: depth stays under log2(n). */
static void quicksort(uint32_t *a, size_t n) {
    while (n > 16) {
        size_t mid = n / 2;  /* median of three as the pivot, moved to a[n-1] */
        if (a[mid] < a[0]) swap(&a[mid], &a[0]);
        if (a[n - 1] < a[0]) swap(&a[n - 1], &a[0]);
        if (a[mid] < a[n - 1]) swap(&a[mid], &a[n - 1]);
        uint32_t pivot = a[n - 1];
        size_t store = 0;
        for (size_t i = 0; i < n - 1; i++)
            if (a[i] < pivot) swap(&a[i], &a[store++]);
        swap(&a[store], &a[n - 1]);
        if (store < n - store - 1) {
            quicksort(a, store);
            a += store + 1;
            n -= store + 1;
        } else {
            quicksort(a + store + 1, n - store - 1);
            n = store;
        }
    }
    insertion_sort(a, n);
}

static int64_t kernel_sort(int32_t n) {
    if (n < 1) return 0;
    uint32_t *a = arena((size_t)n * sizeof *a);
    if (!a) return failed = 1;
    uint32_t state = 2463534242u;
    for (int32_t i = 0; i < n; i++) a[i] = xorshift(&state);
    quicksort(a, (size_t)n);
    int64_t sum = 0;
    for (int32_t i = 0; i < n; i++) {
        if (i > 0 && a[i - 1] > a[i]) return failed = 1;  /* not sorted */
        sum = sum * 31 + a[i];
    }
    return sum;
}

/* -- 4: a register-machine interpreter ------------------------------------------ */

enum { OP_SET, OP_ADD, OP_ADDI, OP_MULI, OP_SHRI, OP_ANDI, OP_JZ, OP_JNZ, OP_JLT, OP_JMP,
       OP_EQI, OP_HALT };

typedef struct {
    uint8_t op, a, b, c;  /* registers a, b; c a register or an immediate */
    int32_t imm;
} Insn;

/* Registers: r0 = n, r1 = i, r2 = x, r3 = steps, r4 = total, r5 = scratch.
 * for (i = 1; i < n; i++) { x = i; while (x != 1) { x = x&1 ? 3x+1 : x>>1; steps++; } } */
static const Insn COLLATZ[] = {
    /*  0 */ {OP_SET, 1, 0, 0, 1},
    /*  1 */ {OP_SET, 3, 0, 0, 0},
    /*  2 */ {OP_JLT, 1, 0, 0, 4},     /* i < n: go on */
    /*  3 */ {OP_HALT, 3, 0, 0, 0},    /* result: steps */
    /*  4 */ {OP_SET, 2, 0, 0, 0},
    /*  5 */ {OP_ADD, 2, 1, 0, 0},     /* x = i */
    /*  6 */ {OP_EQI, 5, 2, 0, 1},     /* r5 = x == 1 */
    /*  7 */ {OP_JNZ, 5, 0, 0, 16},
    /*  8 */ {OP_ANDI, 5, 2, 0, 1},    /* r5 = x & 1 */
    /*  9 */ {OP_JZ, 5, 0, 0, 13},
    /* 10 */ {OP_MULI, 2, 2, 0, 3},
    /* 11 */ {OP_ADDI, 2, 2, 0, 1},
    /* 12 */ {OP_JMP, 0, 0, 0, 14},
    /* 13 */ {OP_SHRI, 2, 2, 0, 1},
    /* 14 */ {OP_ADDI, 3, 3, 0, 1},
    /* 15 */ {OP_JMP, 0, 0, 0, 6},
    /* 16 */ {OP_ADDI, 1, 1, 0, 1},
    /* 17 */ {OP_JMP, 0, 0, 0, 2},
};

static int64_t interpret(const Insn *code, int64_t *r) {
    for (size_t pc = 0;;) {
        const Insn *in = &code[pc++];
        switch (in->op) {
        case OP_SET: r[in->a] = in->imm; break;
        case OP_ADD: r[in->a] += r[in->b]; break;
        case OP_ADDI: r[in->a] = r[in->b] + in->imm; break;
        case OP_MULI: r[in->a] = r[in->b] * in->imm; break;
        case OP_SHRI: r[in->a] = r[in->b] >> in->imm; break;
        case OP_ANDI: r[in->a] = r[in->b] & in->imm; break;
        case OP_EQI: r[in->a] = r[in->b] == in->imm; break;
        case OP_JZ: if (!r[in->a]) pc = (size_t)in->imm; break;
        case OP_JNZ: if (r[in->a]) pc = (size_t)in->imm; break;
        case OP_JLT: if (r[in->a] < r[in->b]) pc = (size_t)in->imm; break;
        case OP_JMP: pc = (size_t)in->imm; break;
        case OP_HALT: return r[in->a];
        default: return failed = 1;
        }
    }
}

static int64_t kernel_interp(int32_t n) {
    int64_t r[8] = {n, 0, 0, 0, 0, 0, 0, 0};
    return interpret(COLLATZ, r);
}

/* -- the export ----------------------------------------------------------------- */

/* Kernel number -> its checksum (the low 63 bits of the kernel's result), or -1
 * for an unknown kernel or one that failed. */
EXPORT(run) int64_t run(int32_t kernel, int32_t n) {
    int64_t result;
    failed = 0;
    switch (kernel) {
    case 0: result = kernel_sha256(n); break;
    case 1: result = kernel_sieve(n); break;
    case 2: result = kernel_nbody(n); break;
    case 3: result = kernel_sort(n); break;
    case 4: result = kernel_interp(n); break;
    default: return -1;
    }
    return failed ? -1 : (int64_t)((uint64_t)result & INT64_MAX);
}

/* The sha256 of data[0..len), for a test against Python's hashlib: out gets 32 bytes. */
EXPORT(digest) void digest(const unsigned char *data, int32_t len, unsigned char *out) {
    sha256(data, (size_t)len, out);
}

/* Scratch memory of at least `bytes` for a caller (the digest check writes its input there). */
EXPORT(scratch) void *scratch(int32_t bytes) { return arena((size_t)bytes); }
