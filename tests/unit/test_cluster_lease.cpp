// The cluster lease's Lua scripts against a real redis-server started on a
// free port of 127.0.0.1: acquire, compare-and-renew, compare-and-release,
// fencing, publish refusals and the readers' rules.
#include "cluster_lease.hpp"
#include "cluster_lease_task.hpp"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "daemon_config.hpp"
#include "snapshot.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit::cluster {
namespace {

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||  // NOLINT
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {            // NOLINT
    if (fd >= 0) ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

struct ContextDeleter {
  void operator()(redisContext* context) const noexcept { redisFree(context); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

// One redis-server for the whole suite.
class RedisLease : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::access("/usr/bin/redis-server", X_OK) != 0) return;
    port_ = free_port();
    directory_ = new test::TempDir();
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      ::dup2(null_fd, STDIN_FILENO);
      ::dup2(null_fd, STDOUT_FILENO);
      ::dup2(null_fd, STDERR_FILENO);
      const std::string port = std::to_string(port_);
      ::execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--dir", directory_->path().c_str(), "--loglevel", "warning",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      Context probe(redisConnect("127.0.0.1", port_));
      if (probe && probe->err == 0) {
        auto* reply = static_cast<redisReply*>(redisCommand(probe.get(), "PING"));
        const bool up = reply != nullptr && reply->type == REDIS_REPLY_STATUS;
        if (reply != nullptr) freeReplyObject(reply);
        if (up) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  static void TearDownTestSuite() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    delete directory_;
    directory_ = nullptr;
  }

  void SetUp() override {
    if (pid_ <= 0) GTEST_SKIP() << "redis-server not installed";
    context_.reset(redisConnect("127.0.0.1", port_));
    ASSERT_TRUE(context_ && context_->err == 0);
    scripts_ = std::make_unique<ScriptCache>(send_on(context_.get()));
    run_ = scripts_->runner();
    // Each test has a cluster of its own.
    cluster_ = std::string("t-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    keys_ = LeaseKeys::for_cluster(cluster_);
  }

  std::string raw(const std::vector<std::string>& words) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& word : words) {
      argv.push_back(word.data());
      lengths.push_back(word.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (reply == nullptr) return "<lost>";
    std::string out = reply->type == REDIS_REPLY_INTEGER ? std::to_string(reply->integer)
                      : reply->str != nullptr         ? std::string(reply->str, reply->len)
                                                      : std::string();
    freeReplyObject(reply);
    return out;
  }

  Lease lease(const std::string& node, std::uint32_t ttl_ms = 6000) {
    return Lease(LeaseSettings{cluster_, node, ttl_ms, node + "-token"});
  }

  static ClusterCounts sample_counts(std::uint64_t authenticated) {
    ClusterCounts counts;
    counts.counts.active = {1, 2, 3, authenticated};
    counts.counts.inactive = {4, 5, 6, 7};
    counts.counts.files_seen = 28 + authenticated;
    counts.masters_reached = 3;
    counts.masters_total = 3;
    counts.last_pass_wall_ns = 1'700'000'000'000'000'000;
    counts.last_pass_duration_us = 1234;
    counts.notifications = true;
    return counts;
  }

  static inline pid_t pid_ = -1;
  static inline std::uint16_t port_ = 0;
  static inline test::TempDir* directory_ = nullptr;
  Context context_;
  std::unique_ptr<ScriptCache> scripts_;
  ScriptRunner run_;
  std::string cluster_;
  LeaseKeys keys_;
};

TEST(LeaseKeys, UseTheClusterAsHashTag) {
  const auto keys = LeaseKeys::for_cluster("prod-web");
  EXPECT_EQ(keys.lease, "coupecircuit:{prod-web}:lease");
  EXPECT_EQ(keys.fencing, "coupecircuit:{prod-web}:fencing");
  EXPECT_EQ(keys.counts, "coupecircuit:{prod-web}:counts");
  EXPECT_EQ(node_of_value("web-1:0123abcd"), "web-1");
  EXPECT_EQ(random_token().size(), 16U);
  EXPECT_NE(random_token(), random_token());
}

TEST(LeaseConfig, TtlAndStalenessInTheClusterSection) {
  const auto defaults = parse_daemon_config_text("[cluster]\nname = prod\nredis = tcp://127.0.0.1:6379\n", "t.conf");
  ASSERT_TRUE(defaults) << defaults.error().message;
  EXPECT_EQ(defaults->cluster.lease_ttl_s, 6U);
  EXPECT_EQ(defaults->cluster.counts_stale_after_s, 0U);  // 3 x [sessions] rescan_interval
  const auto set = parse_daemon_config_text(
      "[cluster]\nname = prod\nredis = tcp://127.0.0.1:6379\nlease_ttl = 2\ncounts_stale_after = 9\n", "t.conf");
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->cluster.lease_ttl_s, 2U);
  EXPECT_EQ(set->cluster.counts_stale_after_s, 9U);
  for (const char* bad : {"lease_ttl = 0", "lease_ttl = 301", "lease_ttl = 2.5", "counts_stale_after = 0"}) {
    const auto refused = parse_daemon_config_text(
        std::string("[cluster]\nname = prod\nredis = tcp://127.0.0.1:6379\n") + bad + "\n", "t.conf");
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message.find("t.conf:4"), std::string::npos) << refused.error().message;
  }
}

TEST(ClusterCountsJson, RoundTripsAndRejectsWrongShapes) {
  ClusterCounts counts;
  counts.counts.active = {1, 2, 3, 4};
  counts.counts.inactive = {5, 6, 7, 8};
  counts.counts.inactive_unread = 9;
  counts.counts.files_seen = 36;
  counts.masters_reached = 2;
  counts.masters_total = 3;
  counts.last_pass_wall_ns = 42;
  counts.notifications = true;
  auto back = counts_from_json(counts_to_json(counts));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, counts);
  EXPECT_FALSE(counts_from_json("[]"));
  EXPECT_FALSE(counts_from_json("{"));
  EXPECT_FALSE(counts_from_json(R"({"active":[1,2,3]})"));
  std::string negative = counts_to_json(counts);
  negative.replace(negative.find("\"keys_seen\":36"), 14, "\"keys_seen\":-1");
  EXPECT_FALSE(counts_from_json(negative));
  std::string too_many = counts_to_json(counts);
  too_many.replace(too_many.find("\"masters_reached\":2"), 19, "\"masters_reached\":9");
  EXPECT_FALSE(counts_from_json(too_many));
  EXPECT_FALSE(counts_from_json(std::string(kMaxCountsJsonBytes + 1, ' ')));
}

TEST_F(RedisLease, OneHolderAtATimeAndFencingGoesUp) {
  Lease a = lease("web-1");
  Lease b = lease("web-2");
  ASSERT_TRUE(a.step(run_, 1000));
  EXPECT_TRUE(a.holding(1000));
  EXPECT_EQ(a.fencing(), 1U);
  EXPECT_EQ(a.holder(), "web-1");
  EXPECT_EQ(raw({"GET", keys_.lease}), "web-1:web-1-token");
  const auto pttl = std::stoll(raw({"PTTL", keys_.lease}));
  EXPECT_GT(pttl, 5000);
  EXPECT_LE(pttl, 6000);
  EXPECT_EQ(a.next_step_ms(), 1000U + 2000U);  // renewed at a third of the TTL

  ASSERT_TRUE(b.step(run_, 1000));
  EXPECT_FALSE(b.holding(1000));
  EXPECT_EQ(b.holder(), "web-1");
  // The contender comes back just after the holder's lease would expire,
  // and never later than a third of the TTL.
  EXPECT_GT(b.next_step_ms(), 1000U);
  EXPECT_LE(b.next_step_ms(), 3000U);

  // Clean stop: released, the other takes it with the next fencing number.
  ASSERT_TRUE(a.release(run_));
  EXPECT_EQ(raw({"EXISTS", keys_.lease}), "0");
  ASSERT_TRUE(b.step(run_, 2000));
  EXPECT_TRUE(b.holding(2000));
  EXPECT_EQ(b.fencing(), 2U);
  ASSERT_TRUE(a.step(run_, 2000));
  EXPECT_FALSE(a.holding(2000));
  EXPECT_EQ(a.holder(), "web-2");
}

TEST_F(RedisLease, AKeyWithoutExpiryIsNotPolledInALoop) {
  raw({"SET", keys_.lease, "web-9:by-hand"});  // no PX: an operator's mistake
  Lease a = lease("web-1");
  ASSERT_TRUE(a.step(run_, 1000));
  EXPECT_FALSE(a.holding(1000));
  EXPECT_EQ(a.holder(), "web-9");
  EXPECT_EQ(a.next_step_ms(), 1000U + 2000U);
}

TEST_F(RedisLease, OnlyTheHolderRenewsOrReleases) {
  Lease a = lease("web-1");
  ASSERT_TRUE(a.step(run_, 0));
  // Another value: the scripts refuse to touch the key.
  auto renewed = run_(renew_script(), {keys_.lease}, {"web-2:other", "60000"});
  ASSERT_TRUE(renewed);
  EXPECT_EQ((*renewed)[0], "0");
  EXPECT_LE(std::stoll(raw({"PTTL", keys_.lease})), 6000);
  auto released = run_(release_script(), {keys_.lease}, {"web-2:other"});
  ASSERT_TRUE(released);
  EXPECT_EQ((*released)[0], "0");
  EXPECT_EQ(raw({"GET", keys_.lease}), "web-1:web-1-token");
  // The holder's renewal pushes the expiry back.
  raw({"PEXPIRE", keys_.lease, "1500"});
  ASSERT_TRUE(a.step(run_, 2000));
  EXPECT_TRUE(a.holding(2000));
  EXPECT_GT(std::stoll(raw({"PTTL", keys_.lease})), 5000);
  EXPECT_EQ(a.fencing(), 1U);  // a renewal keeps the fencing number
}

TEST_F(RedisLease, ExpiredHolderIsDeposedAndItsPublishRefused) {
  Lease a = lease("web-1", 1000);
  Lease b = lease("web-2", 1000);
  ASSERT_TRUE(a.step(run_, 0));
  ASSERT_EQ(*a.publish(run_, sample_counts(10), 0), Lease::PublishOutcome::published);
  // a stalls past its TTL (a pause, a lost network): the key expires and b takes it.
  raw({"PEXPIRE", keys_.lease, "1"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (raw({"EXISTS", keys_.lease}) != "0" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(b.step(run_, 500));
  EXPECT_TRUE(b.holding(500));
  EXPECT_EQ(b.fencing(), 2U);
  // a still believes it holds the lease (its local validity has not run
  // out): Redis refuses its counts all the same.
  EXPECT_TRUE(a.holding(500));
  EXPECT_EQ(*a.publish(run_, sample_counts(99), 500), Lease::PublishOutcome::not_holder);
  EXPECT_FALSE(a.holding(500));
  // Without a successful renewal, a holder stops believing at its TTL.
  Lease c = lease("web-3", 1000);
  EXPECT_FALSE(c.holding(0));
  ASSERT_TRUE(b.step(run_, 700));
  EXPECT_TRUE(b.holding(1699));
  EXPECT_FALSE(b.holding(1700));
}

TEST_F(RedisLease, LowerFencingCannotOverwriteCounts) {
  Lease a = lease("web-1");
  Lease b = lease("web-2");
  ASSERT_TRUE(a.step(run_, 0));
  ASSERT_TRUE(a.publish(run_, sample_counts(10), 0));
  // A Redis failover lost the lease key: b acquires with a higher fencing
  // and publishes; then the old key comes back (two holders for a moment).
  raw({"DEL", keys_.lease});
  ASSERT_TRUE(b.step(run_, 10));
  ASSERT_EQ(b.fencing(), 2U);
  ASSERT_EQ(*b.publish(run_, sample_counts(20), 10), Lease::PublishOutcome::published);
  raw({"SET", keys_.lease, a.value(), "PX", "6000"});
  EXPECT_EQ(*a.publish(run_, sample_counts(99), 20), Lease::PublishOutcome::lower_fencing);
  EXPECT_FALSE(a.holding(20));
  EXPECT_EQ(raw({"HGET", keys_.counts, "fencing"}), "2");
  EXPECT_EQ(raw({"HGET", keys_.counts, "holder"}), "web-2");
}

TEST_F(RedisLease, FencingNeverFallsBelowPublishedCounts) {
  Lease a = lease("web-1");
  raw({"HSET", keys_.counts, "fencing", "41"});
  ASSERT_TRUE(a.step(run_, 0));  // the fencing key was lost (a restart without persistence)
  EXPECT_EQ(a.fencing(), 42U);
  EXPECT_EQ(raw({"GET", keys_.fencing}), "42");
}

TEST_F(RedisLease, ReaderUsesTheHoldersCountsWithTheirAge) {
  Lease a = lease("web-1");
  CountsReader reader(keys_, 3000);
  ASSERT_EQ(*reader.read(run_, 0), CountsReader::ReadOutcome::none);
  EXPECT_FALSE(reader.fresh(0));
  ASSERT_TRUE(a.step(run_, 0));
  ASSERT_TRUE(a.publish(run_, sample_counts(17), 0));
  ASSERT_EQ(*reader.read(run_, 100), CountsReader::ReadOutcome::used);
  ASSERT_TRUE(reader.current());
  EXPECT_EQ(reader.current()->counts, sample_counts(17));
  EXPECT_EQ(reader.current()->fencing, 1U);
  EXPECT_EQ(reader.current()->holder, "web-1");
  EXPECT_EQ(reader.current()->published_ms, a.last_published_ms());
  EXPECT_LT(reader.current()->age_ms, 1000U);
  EXPECT_TRUE(reader.fresh(100));
  // Age goes on locally (monotonic) when Redis cannot be read: stale later.
  EXPECT_TRUE(reader.fresh(2000));
  EXPECT_FALSE(reader.fresh(100 + 3001 + reader.current()->age_ms));
}

TEST_F(RedisLease, ReaderIgnoresLowerFencingUntilItsCountsAreStale) {
  Lease a = lease("web-1");
  CountsReader reader(keys_, 3000);
  ASSERT_TRUE(a.step(run_, 0));
  raw({"SET", keys_.fencing, "6"});
  ASSERT_TRUE(a.release(run_));
  ASSERT_TRUE(a.step(run_, 0));
  ASSERT_EQ(a.fencing(), 7U);
  ASSERT_TRUE(a.publish(run_, sample_counts(70), 0));
  ASSERT_EQ(*reader.read(run_, 0), CountsReader::ReadOutcome::used);
  // Redis lost its data (a restart without persistence): a new holder
  // starts again at fencing 1.
  raw({"DEL", keys_.lease, keys_.fencing, keys_.counts});
  Lease b = lease("web-2");
  ASSERT_TRUE(b.step(run_, 10));
  ASSERT_EQ(b.fencing(), 1U);
  ASSERT_TRUE(b.publish(run_, sample_counts(10), 10));
  EXPECT_EQ(*reader.read(run_, 1000), CountsReader::ReadOutcome::lower_fencing);
  EXPECT_EQ(reader.current()->counts.counts.active[3], 70U);
  // Once the counts in use are stale, the lower fencing is taken.
  EXPECT_EQ(*reader.read(run_, 5000), CountsReader::ReadOutcome::used);
  EXPECT_EQ(reader.current()->counts.counts.active[3], 10U);
  EXPECT_TRUE(reader.fresh(5000));
}

TEST_F(RedisLease, ReaderRefusesDamagedCounts) {
  CountsReader reader(keys_, 3000);
  raw({"HSET", keys_.counts, "fencing", "3", "holder", "web-9", "published_ms", "1", "counts", "{\"active\":1}"});
  EXPECT_EQ(*reader.read(run_, 0), CountsReader::ReadOutcome::invalid);
  EXPECT_FALSE(reader.current());
  EXPECT_NE(reader.last_invalid(), "");
  raw({"HSET", keys_.counts, "fencing", "x"});
  EXPECT_EQ(*reader.read(run_, 0), CountsReader::ReadOutcome::invalid);
}

TEST_F(RedisLease, ScriptsAreLoadedAgainAfterAFlush) {
  Lease a = lease("web-1");
  ASSERT_TRUE(a.step(run_, 0));
  raw({"SCRIPT", "FLUSH"});
  ASSERT_TRUE(a.step(run_, 2000));
  EXPECT_TRUE(a.holding(2000));
}

TEST_F(RedisLease, ConnectionLossIsAnError) {
  ScriptCache none(send_on(nullptr));
  Lease a = lease("web-1");
  const auto stepped = a.step(none.runner(), 0);
  ASSERT_FALSE(stepped);
  EXPECT_FALSE(a.holding(0));
  EXPECT_NE(stepped.error().message, "");
}

// ---- SessionLease: what the snapshot shows on the holder and on the others.

RedisStoreStatus pass_done(std::uint64_t authenticated, bool available = true) {
  RedisStoreStatus own;
  own.counts.active = {0, 1, 0, authenticated};
  own.counts.inactive = {0, 0, 2, 3};
  own.counts.files_seen = authenticated + 6;
  own.available = available;
  own.unavailable_since_wall_s = available ? 0 : 1'700'000'000;
  own.last_good_pass_wall_ns = snapshot::realtime_now_ns();
  own.masters_reached = 1;
  own.masters_total = 1;
  own.passes = 1;
  return own;
}

// What Daemon::publish_store() leaves in the payload and working counts.
void from_store(const RedisStoreStatus& own, snapshot::Payload& payload, SessionCounts& counts) {
  counts = own.counts;
  payload.keys_seen = counts.files_seen;
  counts.files_seen = 0;
  payload.store_masters_reached = own.masters_reached;
  payload.store_masters_total = own.masters_total;
  if (!own.available) {
    payload.flags |= snapshot::kFlagSessionsUnavailable;
    payload.sessions_unavailable_since_wall_s = own.unavailable_since_wall_s;
  }
}

TEST_F(RedisLease, OneNodeCountsTheOthersShowItsCounts) {
  SessionLease a(LeaseSettings{cluster_, "web-1", 6000, "a"}, 3000);
  SessionLease b(LeaseSettings{cluster_, "web-2", 6000, "b"}, 3000);
  // Nothing published yet: b flags sessions unknown (fail open).
  b.run(run_, 0);
  snapshot::Payload pb{};
  SessionCounts cb;
  from_store(RedisStoreStatus{}, pb, cb);
  b.apply(RedisStoreStatus{}, pb, cb, 0);
  EXPECT_FALSE(snapshot::sessions_known(pb));
  EXPECT_NE(pb.cluster.flags & snapshot::kClusterCountsStale, 0U);

  // b stepped first: it holds the lease and counts.
  SessionLease& holder = b;
  SessionLease& reader = a;
  EXPECT_LE(reader.run(run_, 0), 2000U);
  const RedisStoreStatus own = pass_done(42);
  snapshot::Payload ph{};
  SessionCounts ch;
  from_store(own, ph, ch);
  holder.apply(own, ph, ch, 10);
  EXPECT_NE(ph.cluster.flags & snapshot::kClusterLeaseHolder, 0U);
  EXPECT_EQ(ph.cluster.flags & snapshot::kClusterCountsFromPeer, 0U);
  EXPECT_STREQ(ph.cluster.lease_holder, "web-2");
  EXPECT_EQ(ph.cluster.lease_fencing, 1U);
  EXPECT_EQ(ch.active_authenticated(), 42U);
  EXPECT_TRUE(snapshot::sessions_known(ph));
  EXPECT_EQ(holder.run(run_, 20), kHolderPollMs);  // publishes what apply() offered

  // The reader reads at its next period and shows the holder's counts.
  reader.run(run_, 1000);
  snapshot::Payload pr{};
  SessionCounts cr;
  from_store(RedisStoreStatus{}, pr, cr);  // its idle store: never counted
  reader.apply(RedisStoreStatus{}, pr, cr, 1000);
  EXPECT_TRUE(snapshot::sessions_known(pr));
  EXPECT_EQ(pr.cluster.flags & snapshot::kClusterLeaseHolder, 0U);
  EXPECT_NE(pr.cluster.flags & snapshot::kClusterCountsFromPeer, 0U);
  EXPECT_STREQ(pr.cluster.lease_holder, "web-2");
  EXPECT_EQ(pr.cluster.lease_fencing, 1U);
  EXPECT_GT(pr.cluster.counts_published_wall_ms, 0);
  EXPECT_EQ(cr.active_authenticated(), 42U);
  EXPECT_EQ(pr.keys_seen, 48U);
  EXPECT_EQ(pr.store_masters_total, 1U);

  // No read for longer than the limit (Redis unreachable): stale, unknown.
  reader.unreachable(5000);
  snapshot::Payload late{};
  SessionCounts cl;
  reader.apply(RedisStoreStatus{}, late, cl, 1000 + 3001);
  EXPECT_FALSE(snapshot::sessions_known(late));
  EXPECT_NE(late.cluster.flags & snapshot::kClusterCountsStale, 0U);
  EXPECT_EQ(cl.active_authenticated(), 0U);
  EXPECT_EQ(late.cluster.lease_fencing, 1U);  // the last counts seen are still named
}

TEST_F(RedisLease, HolderWhoseStoreFailsFlagsEveryNode) {
  SessionLease holder(LeaseSettings{cluster_, "web-1", 6000, "a"}, 3000);
  SessionLease reader(LeaseSettings{cluster_, "web-2", 6000, "b"}, 3000);
  holder.run(run_, 0);
  reader.run(run_, 0);
  const RedisStoreStatus down = pass_done(0, false);
  snapshot::Payload ph{};
  SessionCounts ch;
  from_store(down, ph, ch);
  holder.apply(down, ph, ch, 0);
  EXPECT_FALSE(snapshot::sessions_known(ph));
  holder.run(run_, 10);
  reader.run(run_, 1000);
  snapshot::Payload pr{};
  SessionCounts cr;
  reader.apply(RedisStoreStatus{}, pr, cr, 1000);
  EXPECT_FALSE(snapshot::sessions_known(pr));
  EXPECT_EQ(pr.cluster.flags & snapshot::kClusterCountsStale, 0U);  // fresh news: unavailable
  EXPECT_EQ(pr.sessions_unavailable_since_wall_s, 1'700'000'000);
}

TEST_F(RedisLease, HolderUsesPeerCountsUntilItsFirstPass) {
  SessionLease holder(LeaseSettings{cluster_, "web-1", 6000, "a"}, 3000);
  holder.run(run_, 0);
  RedisStoreStatus before = pass_done(5);
  before.last_good_pass_wall_ns = 1;  // a pass of an earlier term
  snapshot::Payload p{};
  SessionCounts c;
  from_store(before, p, c);
  holder.apply(before, p, c, 0);
  EXPECT_NE(p.cluster.flags & snapshot::kClusterLeaseHolder, 0U);
  EXPECT_FALSE(snapshot::sessions_known(p));  // nothing published by anyone: unknown, not stale numbers
  EXPECT_EQ(c.active_authenticated(), 0U);
}

}  // namespace
}  // namespace coupecircuit::cluster
