/*
 * powercut: an LD_PRELOAD shim that lets the crash harness simulate a power
 * cut instead of a process crash.
 *
 * A SIGKILL leaves every write() in the OS page cache, so it cannot show what
 * a machine losing power loses: the bytes written but not yet fsynced. This
 * shim records, for each RocksDB write-ahead log file (names ending in
 * ".log"), its size at the last fsync/fdatasync (0 when it was created and
 * never synced). The records go to a state file named by $POWERCUT_STATE, in
 * fixed 256-byte slots: an 8-byte little-endian size, then the NUL-terminated
 * path. After killing the process, the harness truncates each WAL to its
 * recorded size, which is what the disk would hold after a power cut, and
 * restarts the server on that.
 *
 * Only the WAL is modelled: the other RocksDB files (tables, MANIFEST,
 * CURRENT) are written once and synced before RocksDB relies on them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLOT_BYTES 256
#define SLOTS 256
#define MAX_FD 65536

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int state_fd = -2;            /* -2: not opened yet, -1: disabled */
static char slot_path[SLOTS][SLOT_BYTES - 8];
static short fd_slot[MAX_FD];        /* slot index + 1, 0 = not a WAL */

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);

static void init_state(void) {
    if (state_fd != -2) return;
    const char *path = getenv("POWERCUT_STATE");
    state_fd = -1;
    if (path == NULL || *path == '\0') return;
    int (*op)(const char *, int, ...) = dlsym(RTLD_NEXT, "open");
    state_fd = op(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
}

static int is_wal(const char *path) {
    size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".log") == 0;
}

/* Writes the slot's size record. Called with the lock held. */
static void put_size(int slot, uint64_t size) {
    unsigned char rec[8];
    for (int i = 0; i < 8; i++) rec[i] = (unsigned char)(size >> (8 * i));
    if (pwrite(state_fd, rec, 8, (off_t)slot * SLOT_BYTES) != 8) { /* best effort */ }
}

/* Registers a newly opened WAL file descriptor. */
static void track(int fd, int dirfd, const char *path, int flags) {
    if (fd < 0 || fd >= MAX_FD || !is_wal(path) || (flags & (O_WRONLY | O_RDWR)) == 0) return;
    char full[SLOT_BYTES - 8];
    if (path[0] == '/') {
        snprintf(full, sizeof full, "%s", path);
    } else {
        /* Resolve through /proc so relative names are recorded fully. */
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, full, sizeof full - 1);
        if (n <= 0) return;
        full[n] = '\0';
    }
    (void)dirfd;
    pthread_mutex_lock(&lock);
    init_state();
    if (state_fd >= 0) {
        int slot = -1;
        for (int i = 0; i < SLOTS; i++) {
            if (strcmp(slot_path[i], full) == 0) { slot = i; break; }
            if (slot < 0 && slot_path[i][0] == '\0') slot = i;
        }
        if (slot >= 0) {
            int fresh = slot_path[slot][0] == '\0';
            if (fresh) {
                snprintf(slot_path[slot], sizeof slot_path[slot], "%s", full);
                char rec[SLOT_BYTES];
                memset(rec, 0, sizeof rec);
                memcpy(rec + 8, full, strlen(full));
                /* A new WAL starts synced at its current size (0 when created). */
                struct stat st;
                uint64_t size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
                for (int i = 0; i < 8; i++) rec[i] = (char)(size >> (8 * i));
                if (pwrite(state_fd, rec, SLOT_BYTES, (off_t)slot * SLOT_BYTES) != SLOT_BYTES) { }
            }
            fd_slot[fd] = (short)(slot + 1);
        }
    }
    pthread_mutex_unlock(&lock);
}

static void synced(int fd) {
    if (fd < 0 || fd >= MAX_FD || fd_slot[fd] == 0) return;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    pthread_mutex_lock(&lock);
    if (fd_slot[fd] != 0 && state_fd >= 0) put_size(fd_slot[fd] - 1, (uint64_t)st.st_size);
    pthread_mutex_unlock(&lock);
}

#define RESOLVE(var, name) do { if (!var) var = dlsym(RTLD_NEXT, name); } while (0)

int open(const char *path, int flags, ...) {
    RESOLVE(real_open, "open");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    int fd = real_open(path, flags, mode);
    track(fd, AT_FDCWD, path, flags);
    return fd;
}

int open64(const char *path, int flags, ...) {
    RESOLVE(real_open64, "open64");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    int fd = real_open64(path, flags, mode);
    track(fd, AT_FDCWD, path, flags);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...) {
    RESOLVE(real_openat, "openat");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    int fd = real_openat(dirfd, path, flags, mode);
    track(fd, dirfd, path, flags);
    return fd;
}

int fsync(int fd) {
    RESOLVE(real_fsync, "fsync");
    int r = real_fsync(fd);
    if (r == 0) synced(fd);
    return r;
}

int fdatasync(int fd) {
    RESOLVE(real_fdatasync, "fdatasync");
    int r = real_fdatasync(fd);
    if (r == 0) synced(fd);
    return r;
}

int close(int fd) {
    RESOLVE(real_close, "close");
    if (fd >= 0 && fd < MAX_FD) fd_slot[fd] = 0;
    return real_close(fd);
}
