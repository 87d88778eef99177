/*
 * hype-agent: hype's guest agent. Runs commands and reads and writes files for the host, over one
 * stream connection per request (AF_VSOCK port 1024 by default; a Unix socket with --unix for tests on
 * the host). The protocol is guest/agent/PROTOCOL.md: length-prefixed frames, a HELLO exchange, then one
 * EXEC, WRITE_FILE or READ_FILE.
 *
 * Built static by the guest build (guest/src/agent.ts):
 *   gcc -static -Os -Wall -Wextra -Werror -o hype-agent hype-agent.c
 *
 * Process model: the listener forks one process per connection and reaps it (it is also a child
 * subreaper, so orphaned grandchildren of commands are reaped here, not left as zombies). A connection
 * process runs one request and exits. What a host can make the agent hold is fixed: a 1 MiB frame buffer,
 * a 256 KiB output buffer and a 256 KiB stdin window per connection, and at most --max-connections (128)
 * connections; a malformed frame ends that connection (with an ERROR frame when possible) and nothing else.
 * Every descriptor is close-on-exec, so commands inherit only their stdin, stdout and stderr.
 *
 * Quiet unless something fails: the listener reports its own failures on stderr (the console in the
 * guest); -v also reports each connection's errors.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <linux/close_range.h>
#include <linux/vm_sockets.h>

extern char **environ;

/* ---- protocol constants (PROTOCOL.md) ---------------------------------------------------------------- */

#define PROTOCOL_VERSION 1u
/* The length field counts the type byte and the payload: 1 .. MAX_FRAME_LENGTH. */
#define MAX_FRAME_LENGTH (1u << 20)
#define HEADER_SIZE 5u
/* The largest data payload the agent sends (STDOUT, STDERR, FILE_DATA). */
#define DATA_CHUNK (64u * 1024)
/* STDIN bytes the host may have sent and the agent not yet acknowledged. */
#define STDIN_WINDOW (256u * 1024)

enum frame_type {
	T_HELLO = 0x01,
	T_HELLO_ACK = 0x02,
	T_EXEC = 0x10,
	T_STDIN = 0x11,
	T_STDIN_EOF = 0x12,
	T_KILL = 0x13,
	T_STARTED = 0x14,
	T_STDOUT = 0x15,
	T_STDERR = 0x16,
	T_STDIN_ACK = 0x17,
	T_EXIT = 0x18,
	T_WRITE_FILE = 0x20,
	T_FILE_DATA = 0x21,
	T_FILE_END = 0x22,
	T_WRITE_DONE = 0x23,
	T_READ_FILE = 0x30,
	T_FILE_INFO = 0x31,
	T_ERROR = 0x7f,
};

#define EXEC_F_STDIN 0x1u
#define EXEC_F_REPLACE_ENV 0x2u
#define KILL_F_GROUP 0x1u
#define WRITE_F_MKDIRS 0x1u

/* ---- agent limits ------------------------------------------------------------------------------------ */

#define IN_CAPACITY (4u + MAX_FRAME_LENGTH)
#define OUT_CAPACITY (256u * 1024)
/* Output space kept free for control frames (STDIN_ACK, EXIT, ERROR) while output data is buffered. */
#define OUT_RESERVE 1024u
#define DEFAULT_PORT 1024u
#define DEFAULT_MAX_CONNECTIONS 128
/* From accept to the request frame (a HELLO-only probe just closes). */
#define REQUEST_TIMEOUT_MS 10000
/* After the last frame: how long the agent waits for the host to close before it closes itself. */
#define LINGER_MS 5000
/* How long an ERROR frame may wait for a host that does not read. */
#define ERROR_FLUSH_MS 2000
#define MAX_MESSAGE 768

static int verbose;

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	if ((size_t)n > sizeof line - 2) n = sizeof line - 2;
	line[n++] = '\n';
	/* One write, so lines of concurrent connection processes do not interleave. */
	ssize_t ignored = write(2, line, (size_t)n);
	(void)ignored;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = now_ms();
	if (deadline == 0) return -1;
	if (now >= deadline) return 0;
	uint64_t left = deadline - now;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0) return -1;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- payload builder and reader ---------------------------------------------------------------------- */

struct builder {
	uint8_t *p;
	size_t len, cap;
};

static void b_bytes(struct builder *b, const void *data, size_t n)
{
	if (n > b->cap - b->len) n = b->cap - b->len; /* callers size their buffers; never overflow */
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void b_u32(struct builder *b, uint32_t v)
{
	uint8_t x[4];
	put_u32(x, v);
	b_bytes(b, x, 4);
}

static void b_u64(struct builder *b, uint64_t v)
{
	b_u32(b, (uint32_t)(v >> 32));
	b_u32(b, (uint32_t)v);
}

static void b_str(struct builder *b, const char *s, size_t n)
{
	if (n > b->cap - b->len - 4) n = b->cap - b->len - 4;
	b_u32(b, (uint32_t)n);
	b_bytes(b, s, n);
}

struct reader {
	const uint8_t *p;
	size_t left;
	int bad;
};

static uint32_t r_u32(struct reader *r)
{
	if (r->left < 4) { r->bad = 1; r->left = 0; return 0; }
	uint32_t v = get_u32(r->p);
	r->p += 4;
	r->left -= 4;
	return v;
}

static uint64_t r_u64(struct reader *r)
{
	uint64_t hi = r_u32(r);
	uint64_t lo = r_u32(r);
	return hi << 32 | lo;
}

/* A string: u32 length, then that many bytes (not NUL-terminated in the frame). */
static const uint8_t *r_str(struct reader *r, uint32_t *len)
{
	uint32_t n = r_u32(r);
	if (r->bad || n > r->left) { r->bad = 1; r->left = 0; *len = 0; return NULL; }
	const uint8_t *s = r->p;
	r->p += n;
	r->left -= n;
	*len = n;
	return s;
}

/* A copy of a protocol string as a C string, or NULL if it contains a NUL byte (or memory ran out). */
static char *c_string(const uint8_t *s, uint32_t len)
{
	if (len > 0 && memchr(s, 0, len) != NULL) return NULL;
	char *out = malloc((size_t)len + 1);
	if (out == NULL) return NULL;
	if (len > 0) memcpy(out, s, len);
	out[len] = 0;
	return out;
}

/* ---- a connection: frame input and output buffers ---------------------------------------------------- */

struct conn {
	int fd;
	uint8_t *in;
	size_t in_start, in_len;
	uint8_t *out;
	size_t out_start, out_len;
	/* The frame try_parse() found at in + in_start. */
	uint8_t type;
	const uint8_t *payload;
	uint32_t payload_len;
	size_t frame_size;
	char problem[MAX_MESSAGE];
};

/* Free output space (compacting first). */
static size_t out_space(struct conn *c)
{
	if (c->out_start > 0) {
		memmove(c->out, c->out + c->out_start, c->out_len);
		c->out_start = 0;
	}
	return OUT_CAPACITY - c->out_len;
}

/* Appends a frame; returns -1 (and queues nothing) if it does not fit. */
static int queue_frame(struct conn *c, uint8_t type, const void *payload, size_t len)
{
	if (out_space(c) < HEADER_SIZE + len) return -1;
	uint8_t *p = c->out + c->out_len;
	put_u32(p, (uint32_t)(len + 1));
	p[4] = type;
	if (len > 0) memcpy(p + HEADER_SIZE, payload, len);
	c->out_len += HEADER_SIZE + len;
	return 0;
}

/* Writes what the socket takes now. 0: progress or would block; -1: the host is gone. */
static int send_some(struct conn *c)
{
	while (c->out_len > 0) {
		ssize_t n = write(c->fd, c->out + c->out_start, c->out_len);
		if (n > 0) {
			c->out_start += (size_t)n;
			c->out_len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
		return -1;
	}
	c->out_start = 0;
	return 0;
}

/* Writes everything queued, waiting for the socket (at most timeout_ms when >= 0). 0 ok, -1 gone or late. */
static int flush_out(struct conn *c, int timeout_ms)
{
	uint64_t deadline = timeout_ms >= 0 ? now_ms() + (uint64_t)timeout_ms : 0;
	while (c->out_len > 0) {
		if (send_some(c) < 0) return -1;
		if (c->out_len == 0) break;
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		int wait = timeout_ms >= 0 ? remaining_ms(deadline) : -1;
		if (timeout_ms >= 0 && wait == 0) return -1;
		int r = poll(&p, 1, wait);
		if (r < 0 && errno != EINTR) return -1;
		if (r == 0) return -1;
	}
	return 0;
}

/* 1: a complete frame starts at in + in_start; 0: more bytes needed; -1: bad length (c->problem says). */
static int try_parse(struct conn *c)
{
	if (c->in_len < 4) return 0;
	const uint8_t *p = c->in + c->in_start;
	uint32_t len = get_u32(p);
	if (len == 0 || len > MAX_FRAME_LENGTH) {
		snprintf(c->problem, sizeof c->problem, "frame length %u is outside 1..%u", len, MAX_FRAME_LENGTH);
		return -1;
	}
	if (c->in_len < 4u + len) return 0;
	c->type = p[4];
	c->payload = p + HEADER_SIZE;
	c->payload_len = len - 1;
	c->frame_size = 4u + len;
	return 1;
}

static void consume(struct conn *c)
{
	c->in_start += c->frame_size;
	c->in_len -= c->frame_size;
	c->frame_size = 0;
	if (c->in_len == 0) c->in_start = 0;
}

/* One read into the input buffer: > 0 bytes, 0 end of stream, -1 error (errno; EAGAIN when nothing yet). */
static ssize_t fill(struct conn *c)
{
	if (c->in_start > 0) {
		memmove(c->in, c->in + c->in_start, c->in_len);
		c->in_start = 0;
	}
	size_t room = IN_CAPACITY - c->in_len;
	if (room == 0) { errno = EAGAIN; return -1; } /* unreachable: a full buffer holds a whole frame */
	for (;;) {
		ssize_t n = read(c->fd, c->in + c->in_len, room);
		if (n < 0 && errno == EINTR) continue;
		if (n > 0) c->in_len += (size_t)n;
		return n;
	}
}

enum { READ_FRAME = 1, READ_EOF = 0, READ_BAD = -1, READ_TIMEOUT = -2, READ_IO = -3 };

/* Waits for the next frame (until deadline_ms, 0 = forever). */
static int read_frame(struct conn *c, uint64_t deadline)
{
	for (;;) {
		int r = try_parse(c);
		if (r != 0) return r > 0 ? READ_FRAME : READ_BAD;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int wait = remaining_ms(deadline);
		if (deadline != 0 && wait == 0) return READ_TIMEOUT;
		int pr = poll(&p, 1, wait);
		if (pr < 0 && errno == EINTR) continue;
		if (pr < 0) return READ_IO;
		if (pr == 0) return READ_TIMEOUT;
		ssize_t n = fill(c);
		if (n == 0) return READ_EOF;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return READ_IO;
	}
}

/*
 * The end of a connection after its last frame: shut down sending (the host reads EOF), then read and
 * drop whatever the host still sends until it closes (at most LINGER_MS), so that closing with unread
 * input does not reset the connection and destroy frames the host has not read yet.
 */
static void finish(struct conn *c) __attribute__((noreturn));
static void finish(struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	uint64_t deadline = now_ms() + LINGER_MS;
	for (;;) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int wait = remaining_ms(deadline);
		if (wait == 0) break;
		int r = poll(&p, 1, wait);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) break;
		ssize_t n = read(c->fd, c->in, IN_CAPACITY);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
		if (n <= 0) break;
	}
	close(c->fd);
	_exit(0);
}

/* Queues an ERROR frame (errno, its name, what failed, a message) and sends it. */
static void queue_error(struct conn *c, int err, const char *op, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void queue_error(struct conn *c, int err, const char *op, const char *fmt, ...)
{
	char message[MAX_MESSAGE];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	if (n < 0) n = 0;
	if ((size_t)n >= sizeof message) n = sizeof message - 1;
	const char *name = err != 0 ? strerrorname_np(err) : NULL;
	if (name == NULL) name = "";
	uint8_t payload[MAX_MESSAGE + 128];
	struct builder b = { payload, 0, sizeof payload };
	b_u32(&b, (uint32_t)err);
	b_str(&b, name, strlen(name));
	b_str(&b, op, strlen(op));
	b_str(&b, message, (size_t)n);
	if (verbose) logmsg("hype-agent: connection: %s: %s (%s)", op, message, name);
	if (queue_frame(c, T_ERROR, payload, b.len) < 0) {
		/* Only when a host stopped reading in the middle of output: it misses the reason. */
		if (verbose) logmsg("hype-agent: connection: no room for the ERROR frame");
	}
}

/* Ends the connection with an ERROR frame. */
static void fail(struct conn *c, int err, const char *op, const char *fmt, ...) __attribute__((noreturn, format(printf, 4, 5)));
static void fail(struct conn *c, int err, const char *op, const char *fmt, ...)
{
	char message[MAX_MESSAGE];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	queue_error(c, err, op, "%s", message);
	if (flush_out(c, ERROR_FLUSH_MS) < 0) {
		close(c->fd);
		_exit(0);
	}
	finish(c);
}

/* ---- EXEC ------------------------------------------------------------------------------------------- */

struct exec_request {
	char **argv;
	char **envp;
	char *cwd;
	int stdin_given;
};

/* Child side of EXEC: never returns. Reports a failure before exec as (stage, errno) on status_fd. */
static void child_exec(int in_fd, int out_fd, int err_fd, int status_fd, struct exec_request *req) __attribute__((noreturn));
static void child_exec(int in_fd, int out_fd, int err_fd, int status_fd, struct exec_request *req)
{
	uint32_t report[2] = { 0, 0 };
	/* Its own session and process group: KILL with the group flag reaches everything it starts. */
	setsid();
	/* Default dispositions and an empty mask: the agent ignores SIGPIPE and blocks SIGCHLD, and /init
	 * starts it as a background job with SIGINT and SIGQUIT ignored; a command must not inherit that. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (in_fd < 0) {
		in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (in_fd < 0) { report[0] = 3; goto failed; }
	}
	int fds[3] = { in_fd, out_fd, err_fd };
	for (int target = 0; target < 3; target++) {
		if (fds[target] == target) {
			/* Already in place: dup2 would be a no-op and leave close-on-exec set. */
			fcntl(target, F_SETFD, 0);
		} else if (dup2(fds[target], target) < 0) {
			report[0] = 3;
			goto failed;
		}
	}
	if (chdir(req->cwd) < 0) { report[0] = 1; goto failed; }
	/* execvp searches the PATH of the command's own environment. */
	environ = req->envp;
	execvp(req->argv[0], req->argv);
	report[0] = 2;
failed:
	report[1] = (uint32_t)errno;
	ssize_t ignored = write(status_fd, report, sizeof report);
	(void)ignored;
	_exit(127);
}

struct exec_state {
	pid_t pid;
	int reaped;
	int status;
	int out_fd, err_fd, in_fd, sig_fd;
	int stdin_given, stdin_eof;
	uint8_t *ibuf;
	size_t istart, ilen;
	uint32_t unacked;     /* STDIN bytes received and not yet acknowledged */
	uint32_t pending_ack; /* of those, bytes written to the pipe or dropped: the next STDIN_ACK */
	int exit_queued;
};

static void close_fd(int *fd)
{
	if (*fd >= 0) close(*fd);
	*fd = -1;
}

/* Stdin the command will never read (it closed its stdin, or exited): dropped and acknowledged. */
static void drop_stdin(struct exec_state *s)
{
	close_fd(&s->in_fd);
	s->pending_ack += (uint32_t)s->ilen;
	s->istart = s->ilen = 0;
}

static void reap(struct exec_state *s, int options)
{
	if (s->reaped) return;
	for (;;) {
		pid_t r = waitpid(s->pid, &s->status, options);
		if (r < 0 && errno == EINTR) continue;
		if (r == s->pid) {
			s->reaped = 1;
			drop_stdin(s);
		}
		return;
	}
}

/* The host went away or broke the protocol: the command and its process group are killed. */
static void kill_command(struct exec_state *s)
{
	kill(-s->pid, SIGKILL);
	if (!s->reaped) kill(s->pid, SIGKILL);
	reap(s, 0);
}

static void exec_protocol_error(struct conn *c, struct exec_state *s) __attribute__((noreturn));
static void exec_protocol_error(struct conn *c, struct exec_state *s)
{
	kill_command(s);
	fail(c, EPROTO, "protocol", "%s", c->problem);
}

static void host_gone(struct exec_state *s) __attribute__((noreturn));
static void host_gone(struct exec_state *s)
{
	kill_command(s);
	_exit(0);
}

/* 0: handled; -1: protocol error (c->problem says why). */
static int exec_frame(struct conn *c, struct exec_state *s)
{
	switch (c->type) {
	case T_STDIN: {
		uint32_t len = c->payload_len;
		if (!s->stdin_given) {
			snprintf(c->problem, sizeof c->problem, "STDIN for a command started without stdin");
			return -1;
		}
		if (s->stdin_eof) {
			snprintf(c->problem, sizeof c->problem, "STDIN after STDIN_EOF");
			return -1;
		}
		if (len > STDIN_WINDOW - s->unacked) {
			snprintf(c->problem, sizeof c->problem, "STDIN of %u bytes beyond the window (%u of %u bytes unacknowledged)", len, s->unacked,
				 STDIN_WINDOW);
			return -1;
		}
		s->unacked += len;
		if (s->in_fd < 0) {
			s->pending_ack += len;
			return 0;
		}
		/* ilen + pending_ack <= unacked <= STDIN_WINDOW: the data fits the buffer. */
		if (s->istart + s->ilen + len > STDIN_WINDOW) {
			memmove(s->ibuf, s->ibuf + s->istart, s->ilen);
			s->istart = 0;
		}
		memcpy(s->ibuf + s->istart + s->ilen, c->payload, len);
		s->ilen += len;
		return 0;
	}
	case T_STDIN_EOF:
		if (!s->stdin_given || s->stdin_eof || c->payload_len != 0) {
			snprintf(c->problem, sizeof c->problem, "%s",
				 !s->stdin_given ? "STDIN_EOF for a command started without stdin"
				 : s->stdin_eof	 ? "a second STDIN_EOF"
						 : "STDIN_EOF with a payload");
			return -1;
		}
		s->stdin_eof = 1;
		if (s->ilen == 0) close_fd(&s->in_fd);
		return 0;
	case T_KILL: {
		struct reader r = { c->payload, c->payload_len, 0 };
		uint32_t sig = r_u32(&r);
		uint32_t flags = r_u32(&r);
		if (r.bad || r.left != 0 || sig < 1 || sig >= (uint32_t)NSIG || (flags & ~KILL_F_GROUP) != 0) {
			snprintf(c->problem, sizeof c->problem, "bad KILL frame (%u bytes, signal %u, flags 0x%x)", c->payload_len, sig, flags);
			return -1;
		}
		if (flags & KILL_F_GROUP) {
			/* After the command exited its group lives on only while something of it holds a pipe. */
			if (!s->reaped || s->out_fd >= 0 || s->err_fd >= 0) kill(-s->pid, (int)sig);
		} else if (!s->reaped) {
			kill(s->pid, (int)sig);
		}
		return 0;
	}
	default:
		snprintf(c->problem, sizeof c->problem, "frame type 0x%02x is not allowed during EXEC", c->type);
		return -1;
	}
}

/* Reads one chunk of a command's output into a STDOUT/STDERR frame (the caller made room). */
static void pump_output(struct conn *c, int *fd, uint8_t type)
{
	out_space(c);
	uint8_t *p = c->out + c->out_len;
	for (;;) {
		ssize_t n = read(*fd, p + HEADER_SIZE, DATA_CHUNK);
		if (n < 0 && errno == EINTR) continue;
		if (n > 0) {
			put_u32(p, (uint32_t)n + 1);
			p[4] = type;
			c->out_len += HEADER_SIZE + (size_t)n;
		} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			close_fd(fd); /* end of this stream (every writer closed it) */
		}
		return;
	}
}

static void pump_stdin(struct exec_state *s)
{
	for (;;) {
		ssize_t n = write(s->in_fd, s->ibuf + s->istart, s->ilen);
		if (n < 0 && errno == EINTR) continue;
		if (n > 0) {
			s->istart += (size_t)n;
			s->ilen -= (size_t)n;
			s->pending_ack += (uint32_t)n;
			if (s->ilen == 0) {
				s->istart = 0;
				if (s->stdin_eof) close_fd(&s->in_fd);
			}
		} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			drop_stdin(s); /* EPIPE: the command closed its stdin */
		}
		return;
	}
}

static void run_exec(struct conn *c, struct exec_request *req)
{
	int in_p[2] = { -1, -1 }, out_p[2], err_p[2], st_p[2];
	if (req->stdin_given && pipe2(in_p, O_CLOEXEC) < 0) fail(c, errno, "pipe", "pipe: %s", strerror(errno));
	if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 || pipe2(st_p, O_CLOEXEC) < 0)
		fail(c, errno, "pipe", "pipe: %s", strerror(errno));
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	int sig_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0) fail(c, errno, "signalfd", "signalfd: %s", strerror(errno));

	pid_t pid = fork();
	if (pid < 0) fail(c, errno, "fork", "fork: %s", strerror(errno));
	if (pid == 0) child_exec(in_p[0], out_p[1], err_p[1], st_p[1], req);
	if (in_p[0] >= 0) close(in_p[0]);
	close(out_p[1]);
	close(err_p[1]);
	close(st_p[1]);

	/* EOF: exec succeeded (the pipe was close-on-exec); 8 bytes: what failed and errno. */
	uint32_t report[2];
	ssize_t got;
	do got = read(st_p[0], report, sizeof report);
	while (got < 0 && errno == EINTR);
	close(st_p[0]);
	if (got == (ssize_t)sizeof report) {
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
		int err = (int)report[1];
		if (report[0] == 1) fail(c, err, "chdir", "cannot change to directory %s: %s", req->cwd, strerror(err));
		if (report[0] == 2) fail(c, err, "exec", "cannot execute %s: %s", req->argv[0], strerror(err));
		fail(c, err, "setup", "cannot set up stdin/stdout/stderr: %s", strerror(err));
	}

	uint8_t started[4];
	put_u32(started, (uint32_t)pid);
	queue_frame(c, T_STARTED, started, sizeof started);

	struct exec_state s;
	memset(&s, 0, sizeof s);
	s.pid = pid;
	s.out_fd = out_p[0];
	s.err_fd = err_p[0];
	s.in_fd = in_p[1];
	s.sig_fd = sig_fd;
	s.stdin_given = req->stdin_given;
	if (s.stdin_given) {
		s.ibuf = malloc(STDIN_WINDOW);
		if (s.ibuf == NULL) {
			kill_command(&s);
			fail(c, ENOMEM, "exec", "out of memory");
		}
		set_nonblocking(s.in_fd);
	}
	set_nonblocking(s.out_fd);
	set_nonblocking(s.err_fd);

	for (;;) {
		/* Frames already in the input buffer first: the read that brought EXEC may have brought the
		 * request's first STDIN frames too, and the socket will not report them again. */
		int parsed;
		while ((parsed = try_parse(c)) == 1) {
			if (exec_frame(c, &s) < 0) exec_protocol_error(c, &s);
			consume(c);
		}
		if (parsed < 0) exec_protocol_error(c, &s);
		reap(&s, WNOHANG);
		if (s.pending_ack > 0 && !s.exit_queued && out_space(c) >= HEADER_SIZE + 4) {
			uint8_t ack[4];
			put_u32(ack, s.pending_ack);
			queue_frame(c, T_STDIN_ACK, ack, sizeof ack);
			s.unacked -= s.pending_ack;
			s.pending_ack = 0;
		}
		if (s.reaped && s.out_fd < 0 && s.err_fd < 0 && !s.exit_queued && out_space(c) >= HEADER_SIZE + 6) {
			uint8_t exit_payload[6];
			if (WIFSIGNALED(s.status)) {
				exit_payload[0] = 1;
				exit_payload[1] = WCOREDUMP(s.status) ? 1 : 0;
				put_u32(exit_payload + 2, (uint32_t)WTERMSIG(s.status));
			} else {
				exit_payload[0] = 0;
				exit_payload[1] = 0;
				put_u32(exit_payload + 2, (uint32_t)WEXITSTATUS(s.status));
			}
			queue_frame(c, T_EXIT, exit_payload, sizeof exit_payload);
			s.exit_queued = 1;
		}
		if (s.exit_queued && c->out_len == 0) break;

		int room = out_space(c) >= HEADER_SIZE + DATA_CHUNK + OUT_RESERVE;
		struct pollfd p[5] = {
			{ .fd = c->fd, .events = (short)(POLLIN | (c->out_len > 0 ? POLLOUT : 0)) },
			/* No room: the command's output waits in its pipe, and the command blocks writing more. */
			{ .fd = room ? s.out_fd : -1, .events = POLLIN },
			{ .fd = room ? s.err_fd : -1, .events = POLLIN },
			{ .fd = s.ilen > 0 ? s.in_fd : -1, .events = POLLOUT },
			{ .fd = s.reaped ? -1 : s.sig_fd, .events = POLLIN },
		};
		if (poll(p, 5, -1) < 0) {
			if (errno == EINTR) continue;
			host_gone(&s);
		}
		if (p[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
			if (send_some(c) < 0) host_gone(&s);
		}
		if (p[0].revents & (POLLIN | POLLERR | POLLHUP)) {
			ssize_t n = fill(c);
			if (n == 0) host_gone(&s); /* the host closed before EXIT: cancel */
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) host_gone(&s);
			/* The frames read are handled at the top of the loop. */
		}
		if (p[1].revents) pump_output(c, &s.out_fd, T_STDOUT);
		if (p[2].revents && out_space(c) >= HEADER_SIZE + DATA_CHUNK + OUT_RESERVE) pump_output(c, &s.err_fd, T_STDERR);
		if (p[3].revents && s.in_fd >= 0 && s.ilen > 0) pump_stdin(&s);
		if (p[4].revents) {
			struct signalfd_siginfo info[8];
			while (read(s.sig_fd, info, sizeof info) > 0) {}
		}
	}
	finish(c);
}

/* Parses EXEC (the current frame) into a request; ends the connection on a bad one. */
static void do_exec(struct conn *c)
{
	struct reader r = { c->payload, c->payload_len, 0 };
	struct exec_request req;
	memset(&req, 0, sizeof req);
	uint32_t flags = r_u32(&r);
	uint32_t cwd_len;
	const uint8_t *cwd = r_str(&r, &cwd_len);
	uint32_t argc = r_u32(&r);
	if (r.bad) fail(c, EPROTO, "protocol", "EXEC is truncated");
	if (argc > r.left / 4) fail(c, EPROTO, "protocol", "EXEC: %u arguments do not fit the frame", argc);
	if (argc == 0) fail(c, EINVAL, "exec", "argv is empty");
	req.argv = calloc((size_t)argc + 1, sizeof *req.argv);
	if (req.argv == NULL) fail(c, ENOMEM, "exec", "out of memory");
	for (uint32_t i = 0; i < argc; i++) {
		uint32_t len;
		const uint8_t *s = r_str(&r, &len);
		if (r.bad) fail(c, EPROTO, "protocol", "EXEC: argument %u is truncated", i);
		if ((req.argv[i] = c_string(s, len)) == NULL) fail(c, EINVAL, "exec", "argument %u contains a NUL byte", i);
	}
	uint32_t envc = r_u32(&r);
	if (r.bad || envc > r.left / 4) fail(c, EPROTO, "protocol", "EXEC: the environment does not fit the frame");
	char **given = calloc((size_t)envc + 1, sizeof *given);
	if (given == NULL) fail(c, ENOMEM, "exec", "out of memory");
	for (uint32_t i = 0; i < envc; i++) {
		uint32_t len;
		const uint8_t *s = r_str(&r, &len);
		if (r.bad) fail(c, EPROTO, "protocol", "EXEC: environment entry %u is truncated", i);
		if ((given[i] = c_string(s, len)) == NULL) fail(c, EINVAL, "exec", "environment entry %u contains a NUL byte", i);
		char *eq = strchr(given[i], '=');
		if (eq == NULL || eq == given[i]) fail(c, EINVAL, "exec", "environment entry %u is not NAME=value", i);
	}
	if (r.left != 0) fail(c, EPROTO, "protocol", "EXEC: %zu bytes after the last field", r.left);
	if ((flags & ~(EXEC_F_STDIN | EXEC_F_REPLACE_ENV)) != 0) fail(c, EINVAL, "exec", "unknown EXEC flags 0x%x", flags);
	if (cwd_len == 0) req.cwd = strdup("/");
	else if ((req.cwd = c_string(cwd, cwd_len)) == NULL) fail(c, EINVAL, "exec", "cwd contains a NUL byte");
	if (req.cwd == NULL) fail(c, ENOMEM, "exec", "out of memory");
	req.stdin_given = (flags & EXEC_F_STDIN) != 0;

	/* The environment: the given entries alone, or the agent's with the given ones replacing or added. */
	size_t base = 0;
	if (!(flags & EXEC_F_REPLACE_ENV))
		while (environ[base] != NULL) base++;
	req.envp = calloc(base + envc + 1, sizeof *req.envp);
	if (req.envp == NULL) fail(c, ENOMEM, "exec", "out of memory");
	size_t n = 0;
	for (size_t i = 0; i < base; i++) req.envp[n++] = environ[i];
	for (uint32_t i = 0; i < envc; i++) {
		size_t name_len = (size_t)(strchr(given[i], '=') - given[i]);
		size_t j;
		for (j = 0; j < n; j++)
			if (strncmp(req.envp[j], given[i], name_len + 1) == 0) break;
		req.envp[j] = given[i];
		if (j == n) n++;
	}
	req.envp[n] = NULL;
	consume(c);
	run_exec(c, &req);
}

/* ---- WRITE_FILE and READ_FILE ------------------------------------------------------------------------ */

/* mkdir -p of path's parent directories (mode 0755). */
static int make_parents(const char *path)
{
	char *copy = strdup(path);
	if (copy == NULL) return -1;
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/') continue;
		*p = 0;
		if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
			int err = errno;
			free(copy);
			errno = err;
			return -1;
		}
		*p = '/';
	}
	free(copy);
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR) continue;
		if (w < 0) return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void do_write_file(struct conn *c)
{
	struct reader r = { c->payload, c->payload_len, 0 };
	uint32_t mode = r_u32(&r);
	uint32_t flags = r_u32(&r);
	uint32_t path_len;
	const uint8_t *path_bytes = r_str(&r, &path_len);
	if (r.bad || r.left != 0) fail(c, EPROTO, "protocol", "WRITE_FILE is malformed");
	if ((flags & ~WRITE_F_MKDIRS) != 0) fail(c, EINVAL, "write", "unknown WRITE_FILE flags 0x%x", flags);
	if (mode > 07777) fail(c, EINVAL, "write", "mode %o has bits beyond 07777", mode);
	char *path = c_string(path_bytes, path_len);
	if (path == NULL || path_len == 0) fail(c, EINVAL, "open", "the path is empty or contains a NUL byte");
	consume(c);
	if ((flags & WRITE_F_MKDIRS) && make_parents(path) < 0) fail(c, errno, "mkdir", "cannot create the directories of %s: %s", path, strerror(errno));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, (mode_t)mode);
	if (fd < 0) fail(c, errno, "open", "cannot open %s for writing: %s", path, strerror(errno));
	/* The mode as given, whatever the umask and whether the file existed (regular files only: never
	 * chmod a device such as /dev/null). */
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fchmod(fd, (mode_t)mode) < 0)
		fail(c, errno, "chmod", "cannot set the mode of %s: %s", path, strerror(errno));
	uint64_t total = 0;
	for (;;) {
		int got = read_frame(c, 0);
		if (got == READ_BAD) fail(c, EPROTO, "protocol", "%s", c->problem);
		if (got != READ_FRAME) _exit(0); /* the host went away; the file stays as far as it got */
		if (c->type == T_FILE_DATA) {
			if (write_all(fd, c->payload, c->payload_len) < 0) fail(c, errno, "write", "cannot write %s: %s", path, strerror(errno));
			total += c->payload_len;
			consume(c);
		} else if (c->type == T_FILE_END && c->payload_len == 0) {
			consume(c);
			if (close(fd) < 0) fail(c, errno, "close", "cannot write %s: %s", path, strerror(errno));
			uint8_t done[8];
			struct builder b = { done, 0, sizeof done };
			b_u64(&b, total);
			queue_frame(c, T_WRITE_DONE, done, sizeof done);
			if (flush_out(c, -1) < 0) _exit(0);
			finish(c);
		} else {
			fail(c, EPROTO, "protocol", "frame type 0x%02x (%u bytes) is not allowed during WRITE_FILE", c->type, c->payload_len);
		}
	}
}

static void do_read_file(struct conn *c)
{
	struct reader r = { c->payload, c->payload_len, 0 };
	uint64_t max_bytes = r_u64(&r);
	uint32_t path_len;
	const uint8_t *path_bytes = r_str(&r, &path_len);
	if (r.bad || r.left != 0) fail(c, EPROTO, "protocol", "READ_FILE is malformed");
	char *path = c_string(path_bytes, path_len);
	if (path == NULL || path_len == 0) fail(c, EINVAL, "open", "the path is empty or contains a NUL byte");
	consume(c);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) fail(c, errno, "open", "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) fail(c, errno, "stat", "cannot stat %s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode)) fail(c, EISDIR, "read", "%s is a directory", path);
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_bytes)
		fail(c, EFBIG, "read", "%s has %llu bytes, more than the limit of %llu", path, (unsigned long long)st.st_size,
		     (unsigned long long)max_bytes);
	uint8_t info[12];
	struct builder b = { info, 0, sizeof info };
	b_u32(&b, (uint32_t)st.st_mode);
	b_u64(&b, (uint64_t)st.st_size);
	queue_frame(c, T_FILE_INFO, info, sizeof info);
	uint64_t total = 0;
	for (;;) {
		if (flush_out(c, -1) < 0) _exit(0);
		out_space(c);
		uint8_t *p = c->out + c->out_len; /* empty after the flush */
		ssize_t n = read(fd, p + HEADER_SIZE, DATA_CHUNK);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) fail(c, errno, "read", "cannot read %s: %s", path, strerror(errno));
		if (n == 0) break;
		total += (uint64_t)n;
		if (total > max_bytes)
			fail(c, EFBIG, "read", "%s has more than the limit of %llu bytes", path, (unsigned long long)max_bytes);
		put_u32(p, (uint32_t)n + 1);
		p[4] = T_FILE_DATA;
		c->out_len += HEADER_SIZE + (size_t)n;
	}
	close(fd);
	queue_frame(c, T_FILE_END, NULL, 0);
	if (flush_out(c, -1) < 0) _exit(0);
	finish(c);
}

/* ---- one connection --------------------------------------------------------------------------------- */

static void serve(int fd) __attribute__((noreturn));
static void serve(int fd)
{
	struct conn c;
	memset(&c, 0, sizeof c);
	c.fd = fd;
	c.in = malloc(IN_CAPACITY);
	c.out = malloc(OUT_CAPACITY);
	if (c.in == NULL || c.out == NULL) _exit(1);
	set_nonblocking(fd);
	uint64_t deadline = now_ms() + REQUEST_TIMEOUT_MS;

	int got = read_frame(&c, deadline);
	if (got == READ_BAD) fail(&c, EPROTO, "protocol", "%s", c.problem);
	if (got == READ_TIMEOUT) fail(&c, ETIMEDOUT, "hello", "no HELLO within %d ms", REQUEST_TIMEOUT_MS);
	if (got != READ_FRAME) _exit(0);
	if (c.type != T_HELLO) fail(&c, EPROTO, "protocol", "the first frame is type 0x%02x, not HELLO", c.type);
	struct reader r = { c.payload, c.payload_len, 0 };
	uint32_t min_version = r_u32(&r);
	uint32_t max_version = r_u32(&r);
	uint32_t client_len;
	r_str(&r, &client_len);
	if (r.bad || r.left != 0) fail(&c, EPROTO, "protocol", "HELLO is malformed");
	if (min_version > PROTOCOL_VERSION || max_version < PROTOCOL_VERSION)
		fail(&c, EPROTONOSUPPORT, "hello", "the host speaks protocol versions %u..%u, hype-agent speaks %u", min_version, max_version,
		     PROTOCOL_VERSION);
	consume(&c);

	char agent[256];
	struct utsname u;
	if (uname(&u) == 0) snprintf(agent, sizeof agent, "hype-agent (protocol %u; %s %s %s)", PROTOCOL_VERSION, u.sysname, u.release, u.machine);
	else snprintf(agent, sizeof agent, "hype-agent (protocol %u)", PROTOCOL_VERSION);
	uint8_t ack[16 + sizeof agent];
	struct builder b = { ack, 0, sizeof ack };
	b_u32(&b, PROTOCOL_VERSION);
	b_u32(&b, MAX_FRAME_LENGTH);
	b_u32(&b, STDIN_WINDOW);
	b_str(&b, agent, strlen(agent));
	queue_frame(&c, T_HELLO_ACK, ack, b.len);
	if (flush_out(&c, REQUEST_TIMEOUT_MS) < 0) _exit(0);

	got = read_frame(&c, deadline);
	if (got == READ_BAD) fail(&c, EPROTO, "protocol", "%s", c.problem);
	if (got == READ_TIMEOUT) fail(&c, ETIMEDOUT, "request", "no request within %d ms", REQUEST_TIMEOUT_MS);
	if (got != READ_FRAME) _exit(0); /* a HELLO-only probe */
	switch (c.type) {
	case T_EXEC:
		do_exec(&c);
		break;
	case T_WRITE_FILE:
		do_write_file(&c);
		break;
	case T_READ_FILE:
		do_read_file(&c);
		break;
	default:
		fail(&c, EPROTO, "protocol", "frame type 0x%02x is not a request", c.type);
	}
	_exit(0);
}

/* ---- the listener ------------------------------------------------------------------------------------ */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: hype-agent [--port N | --unix PATH] [--max-connections N] [-v]\n"
		"       hype-agent --connect CID:PORT\n"
		"  --port N             listen on AF_VSOCK port N (any CID; default %u)\n"
		"  --unix PATH          listen on a Unix socket instead (tests on the host)\n"
		"  --max-connections N  connections served at once (default %d; more are closed at once)\n"
		"  -v, --verbose        report each connection's errors on stderr\n"
		"  --connect CID:PORT   no agent: connect to AF_VSOCK CID:PORT (the host is CID 2), copy stdin to\n"
		"                       the connection (then shut down its sending side) and the connection to stdout\n"
		"Protocol version %u: guest/agent/PROTOCOL.md\n",
		DEFAULT_PORT, DEFAULT_MAX_CONNECTIONS, PROTOCOL_VERSION);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	if (s == NULL || *s < '0' || *s > '9') return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || *end != 0 || v > max) return -1;
	*out = v;
	return 0;
}

/*
 * --connect CID:PORT: a guest-side client for vsock, as `nc` is for TCP (busybox's nc has no vsock):
 * stdin goes to the connection and EOF becomes a shutdown of its sending side; what the peer sends goes
 * to stdout until it closes. Exit 0, or 1 with a message.
 */
static int connect_main(const char *target)
{
	unsigned long cid, port;
	const char *colon = strchr(target, ':');
	char cid_text[16];
	if (colon == NULL || (size_t)(colon - target) >= sizeof cid_text) goto bad;
	memcpy(cid_text, target, (size_t)(colon - target));
	cid_text[colon - target] = 0;
	if (parse_uint(cid_text, 0xffffffffu, &cid) < 0 || parse_uint(colon + 1, 0xffffffffu, &port) < 0) goto bad;

	/* A closed stdout or connection is a write error with a message, not death by SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "hype-agent: --connect: socket(AF_VSOCK): %s\n", strerror(errno));
		return 1;
	}
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = (unsigned)cid, .svm_port = (unsigned)port };
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		fprintf(stderr, "hype-agent: --connect %s: %s\n", target, strerror(errno));
		return 1;
	}
	static uint8_t buf[64 * 1024];
	int stdin_open = 1;
	for (;;) {
		/* fd -1 once stdin ended: poll would keep reporting its POLLHUP and the loop would spin. */
		struct pollfd fds[2] = { { .fd = fd, .events = POLLIN }, { .fd = stdin_open ? 0 : -1, .events = POLLIN } };
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR) continue;
			fprintf(stderr, "hype-agent: --connect: poll: %s\n", strerror(errno));
			return 1;
		}
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(fd, buf, sizeof buf);
			if (n < 0 && errno == EINTR) continue;
			if (n < 0) {
				fprintf(stderr, "hype-agent: --connect: read: %s\n", strerror(errno));
				return 1;
			}
			if (n == 0) return 0;
			if (write_all(1, buf, (size_t)n) < 0) {
				fprintf(stderr, "hype-agent: --connect: write to stdout: %s\n", strerror(errno));
				return 1;
			}
		}
		if (stdin_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
			ssize_t n = (fds[1].revents & POLLNVAL) ? 0 : read(0, buf, sizeof buf);
			if (n < 0 && errno == EINTR) continue;
			if (n <= 0) {
				stdin_open = 0;
				shutdown(fd, SHUT_WR);
			} else if (write_all(fd, buf, (size_t)n) < 0) {
				fprintf(stderr, "hype-agent: --connect: write: %s\n", strerror(errno));
				return 1;
			}
		}
	}
bad:
	fprintf(stderr, "hype-agent: --connect needs CID:PORT, e.g. 2:5000 (CID 2 is the host)\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long port = DEFAULT_PORT, max_connections = DEFAULT_MAX_CONNECTIONS;
	const char *unix_path = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--port") == 0) {
			if (++i >= argc || parse_uint(argv[i], 0xffffffffu, &port) < 0) {
				fprintf(stderr, "hype-agent: --port needs a port number (0..4294967295)\n");
				return 2;
			}
		} else if (strcmp(a, "--unix") == 0) {
			if (++i >= argc || argv[i][0] == 0) {
				fprintf(stderr, "hype-agent: --unix needs a path\n");
				return 2;
			}
			unix_path = argv[i];
		} else if (strcmp(a, "--connect") == 0) {
			if (++i >= argc) {
				fprintf(stderr, "hype-agent: --connect needs CID:PORT, e.g. 2:5000 (CID 2 is the host)\n");
				return 2;
			}
			return connect_main(argv[i]);
		} else if (strcmp(a, "--max-connections") == 0) {
			if (++i >= argc || parse_uint(argv[i], 65536, &max_connections) < 0 || max_connections == 0) {
				fprintf(stderr, "hype-agent: --max-connections needs a number in 1..65536\n");
				return 2;
			}
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			verbose = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "hype-agent: unknown argument %s\n", a);
			usage(stderr);
			return 2;
		}
	}

	/* Descriptors 0-2 open, so no pipe or socket ends up as a command's stdin, stdout or stderr. */
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0) {
			int null = open("/dev/null", O_RDWR);
			if (null >= 0 && null != fd) {
				dup2(null, fd);
				close(null);
			}
		}
	}
	/* Whatever else the agent inherited (a parent's descriptors without close-on-exec) stays out of commands. */
	if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) < 0) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *e;
		while (d != NULL && (e = readdir(d)) != NULL) {
			int fd = atoi(e->d_name);
			if (fd > 2 && fd != dirfd(d)) fcntl(fd, F_SETFD, FD_CLOEXEC);
		}
		if (d != NULL) closedir(d);
	}
	signal(SIGPIPE, SIG_IGN);
	/* Orphaned processes of commands are reparented to the listener, which reaps them. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	int listener;
	if (unix_path != NULL) {
		struct sockaddr_un addr;
		memset(&addr, 0, sizeof addr);
		addr.sun_family = AF_UNIX;
		if (strlen(unix_path) >= sizeof addr.sun_path) {
			fprintf(stderr, "hype-agent: --unix %s: longer than %zu bytes\n", unix_path, sizeof addr.sun_path - 1);
			return 2;
		}
		strcpy(addr.sun_path, unix_path);
		listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 64) < 0) {
			fprintf(stderr, "hype-agent: cannot listen on %s: %s\n", unix_path, strerror(errno));
			return 1;
		}
	} else {
		struct sockaddr_vm addr;
		memset(&addr, 0, sizeof addr);
		addr.svm_family = AF_VSOCK;
		addr.svm_cid = VMADDR_CID_ANY;
		addr.svm_port = (unsigned int)port;
		listener = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 64) < 0) {
			fprintf(stderr, "hype-agent: cannot listen on vsock port %lu: %s\n", port, strerror(errno));
			return 1;
		}
	}
	/* Relative paths in requests are relative to /. */
	if (chdir("/") < 0) fprintf(stderr, "hype-agent: chdir /: %s\n", strerror(errno));

	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sig_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0) {
		fprintf(stderr, "hype-agent: signalfd: %s\n", strerror(errno));
		return 1;
	}
	pid_t *serving = calloc(max_connections, sizeof *serving);
	if (serving == NULL) {
		fprintf(stderr, "hype-agent: out of memory\n");
		return 1;
	}
	unsigned long active = 0;
	int limit_reported = 0;

	for (;;) {
		struct pollfd p[2] = { { .fd = listener, .events = POLLIN }, { .fd = sig_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) continue;
			fprintf(stderr, "hype-agent: poll: %s\n", strerror(errno));
			return 1;
		}
		if (p[1].revents) {
			struct signalfd_siginfo info[8];
			while (read(sig_fd, info, sizeof info) > 0) {}
			pid_t pid;
			int status;
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				for (unsigned long i = 0; i < max_connections; i++) {
					if (serving[i] == pid) {
						serving[i] = 0;
						active--;
						/* A connection process never dies of a signal unless the agent has a bug: say so. */
						if (WIFSIGNALED(status))
							fprintf(stderr, "hype-agent: connection process %d killed by signal %d\n", (int)pid, WTERMSIG(status));
						else if (verbose && WEXITSTATUS(status) != 0)
							fprintf(stderr, "hype-agent: connection process %d exited with %d\n", (int)pid, WEXITSTATUS(status));
						break;
					}
				}
			}
		}
		if (!(p[0].revents & POLLIN)) continue;
		int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				fprintf(stderr, "hype-agent: accept: %s\n", strerror(errno));
				usleep(100000);
			}
			continue;
		}
		if (active >= max_connections) {
			if (!limit_reported || verbose) fprintf(stderr, "hype-agent: %lu connections open, closing a new one\n", active);
			limit_reported = 1;
			close(fd);
			continue;
		}
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "hype-agent: fork: %s\n", strerror(errno));
			close(fd);
			continue;
		}
		if (pid == 0) {
			close(listener);
			close(sig_fd);
			free(serving);
			serve(fd);
		}
		close(fd);
		for (unsigned long i = 0; i < max_connections; i++) {
			if (serving[i] == 0) {
				serving[i] = pid;
				active++;
				break;
			}
		}
	}
}
