package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/joinincard/engine/kafka"
)

const (
	// brokerDefaultTopics are the topics a pilot needs: card events, and the dead letters the
	// consumers set aside.
	brokerDefaultTopics = "card-events,card-events-dlq"
	// brokerReplicationFactor is 1: the embedded broker is a single broker.
	brokerReplicationFactor = 1
	// brokerStartTimeout bounds creating the topics at start; the broker is in this process, so
	// anything slower is a bug, reported rather than waited on.
	brokerStartTimeout = 30 * time.Second
)

// runBroker runs the embedded Kafka-protocol broker for a pilot on one machine, until the process
// is told to stop.
func runBroker(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("broker", "run an embedded Kafka broker on this machine (a pilot without a Kafka cluster)")
	addr := fs.String("addr", envOr("JOININ_BROKER_ADDR", "127.0.0.1:9092"),
		"loopback host:port to listen on (env JOININ_BROKER_ADDR)")
	dataDir := fs.String("data-dir", envOr("JOININ_BROKER_DATA", ""),
		"directory for the broker's logs, fsynced per write; empty keeps them in memory (env JOININ_BROKER_DATA)")
	defaultPartitions, err := brokerEnvInt("JOININ_BROKER_PARTITIONS", kafka.DefaultEmbeddedPartitions)
	if err != nil {
		return err
	}
	partitions := fs.Int("partitions", defaultPartitions,
		"partitions of each topic created (env JOININ_BROKER_PARTITIONS)")
	topics := fs.String("topics", envOr("JOININ_BROKER_TOPICS", brokerDefaultTopics),
		"comma-separated topics to create at start (env JOININ_BROKER_TOPICS)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("broker takes no arguments, got %q", fs.Args())
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	specs, err := brokerTopicSpecs(*topics, *partitions)
	if err != nil {
		return err
	}

	broker, err := kafka.StartEmbedded(kafka.EmbeddedConfig{
		Addr:       *addr,
		DataDir:    *dataDir,
		Partitions: *partitions,
		Logger:     log,
	})
	if err != nil {
		return err
	}
	defer broker.Close()

	startCtx, cancel := context.WithTimeout(ctx, brokerStartTimeout)
	defer cancel()
	if err := kafka.EnsureTopics(startCtx, broker.Addrs(), specs); err != nil {
		return err
	}
	log.Info("broker ready", "addrs", broker.Addrs(), "data_dir", *dataDir, "topics", *topics, "partitions", *partitions)
	fmt.Fprintf(stdout, "broker listening on %s\n", strings.Join(broker.Addrs(), ","))

	<-ctx.Done()
	log.Info("broker stopping")
	return nil
}

// brokerTopicSpecs turns the --topics list into specs of partitions each.
func brokerTopicSpecs(list string, partitions int) ([]kafka.TopicSpec, error) {
	var specs []kafka.TopicSpec
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		specs = append(specs, kafka.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: brokerReplicationFactor})
	}
	if len(specs) == 0 {
		return nil, errors.New("--topics: no topic named")
	}
	return specs, nil
}

// brokerEnvInt returns the integer in the environment variable key, or fallback if it is unset.
func brokerEnvInt(key string, fallback int) (int, error) {
	v := envOr(key, "")
	if v == "" {
		return fallback, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not an integer", key, v)
	}
	return n, nil
}
