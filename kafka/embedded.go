package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

const (
	// DefaultEmbeddedPartitions is the partition count the embedded broker gives a topic created
	// without one. Partitions bound a topic's consumer parallelism; eight keep every core of a
	// pilot machine busy and leave room for a second consumer process to take half of them.
	DefaultEmbeddedPartitions = 8

	// embeddedMaxPartitions bounds EmbeddedConfig.Partitions. The embedded broker keeps every
	// partition's log and index files open; a thousand is far beyond what one machine consumes in
	// parallel and far below the process's file descriptor limit.
	embeddedMaxPartitions = 1000

	// groupSessionTimeoutMin and groupSessionTimeoutMax are the session timeouts the embedded
	// broker accepts from a consumer group member. They are Apache Kafka's broker defaults
	// (group.min.session.timeout.ms, group.max.session.timeout.ms), so a GroupConfig that works
	// against the embedded broker also works against a real cluster with default settings.
	groupSessionTimeoutMin = 6 * time.Second
	groupSessionTimeoutMax = 30 * time.Minute
)

// EmbeddedConfig configures the in-process broker.
type EmbeddedConfig struct {
	// Addr is the host:port to listen on; "127.0.0.1:0" picks a free port. It must be a loopback
	// address: the embedded broker has no authentication and no TLS, so it never listens where
	// another machine could reach it.
	Addr string
	// DataDir is where the broker keeps its logs. Empty keeps everything in memory, lost when the
	// broker stops. Otherwise every produced batch is written and fsynced before it is
	// acknowledged, so an acknowledged message survives a kill -9 of the broker's process (the
	// write alone ensures that) and a crash of the machine (the fsync ensures that). One
	// exception: kfake logs a failed write or fsync (a full disk) as a warning and acknowledges
	// the batch all the same, so give the broker a Logger and alert on its warnings.
	DataDir string
	// Partitions is the partition count of a topic created without one; 0 means
	// DefaultEmbeddedPartitions.
	Partitions int
	// Logger receives the broker's warnings and errors (failed persistence, for one); nil
	// discards them.
	Logger *slog.Logger
}

// Embedded is a running in-process broker.
type Embedded struct {
	cluster *kfake.Cluster
	addrs   []string
}

// StartEmbedded starts an in-process broker listening on cfg.Addr. With a DataDir it reloads what
// an earlier broker persisted there. Close stops it.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if err := checkLoopback(cfg.Addr); err != nil {
		return nil, err
	}
	partitions := cfg.Partitions
	if partitions == 0 {
		partitions = DefaultEmbeddedPartitions
	}
	if partitions < 1 || partitions > embeddedMaxPartitions {
		return nil, fmt.Errorf("embedded broker: partitions %d outside 1..%d", cfg.Partitions, embeddedMaxPartitions)
	}

	addr := cfg.Addr
	opts := []kfake.Opt{
		// One broker: partition leadership never moves, and the address handed out is the only
		// address a client learns from metadata.
		kfake.NumBrokers(1),
		// kfake always asks for 127.0.0.1:<port>; listen on exactly the address configured
		// instead, so "localhost:9092" or "[::1]:9092" are honoured as given.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, addr)
		}),
		kfake.DefaultNumPartitions(partitions),
		kfake.GroupMinSessionTimeout(groupSessionTimeoutMin),
		kfake.GroupMaxSessionTimeout(groupSessionTimeoutMax),
		// Topics are created explicitly (EnsureTopics), never by a typo in a producer's topic.
		// kfake's auto-creation is off unless kfake.AllowAutoTopicCreation is given; it is not.
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir), kfake.SyncWrites())
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(slogLogger{cfg.Logger}))
	}

	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s: %w", cfg.Addr, err)
	}
	return &Embedded{cluster: cluster, addrs: cluster.ListenAddrs()}, nil
}

// Addrs returns the broker's bootstrap addresses, with the port chosen if Addr asked for port 0.
func (e *Embedded) Addrs() []string {
	return append([]string(nil), e.addrs...)
}

// Close stops the broker: it stops listening, drops client connections and, with a DataDir,
// writes its state to disk. Calling Close again does nothing.
func (e *Embedded) Close() {
	e.cluster.Close()
}

// checkLoopback refuses an address another machine could reach.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("embedded broker address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("embedded broker address %q: %w", addr, errNotLoopback)
}

var errNotLoopback = errors.New("not a loopback address: the embedded broker has no authentication, so it listens on 127.0.0.1, ::1 or localhost only")

// slogLogger passes kfake's warnings and errors to a slog.Logger. kfake logs every request at
// info and debug; those stay out of the engine's logs.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.log.Error("embedded broker: " + fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		l.log.Warn("embedded broker: " + fmt.Sprintf(format, args...))
	}
}
