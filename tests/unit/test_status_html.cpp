// Unit tests of mod_coupecircuit/status_html.cpp: the HTML status page's
// ?refresh bound, escaping, bars and the chart of the last hour.
#include <gtest/gtest.h>

#include <cstring>
#include <regex>
#include <string>

#include "status_report.hpp"

namespace coupecircuit::module {
namespace {

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

StatusReport sample_report() {
  StatusReport report;
  report.health = Health::fresh;
  report.has_payload = true;
  report.snapshot_path = "/run/<cc>/snapshot";
  report.now_wall_s = 1'800'000'000;
  report.payload.sessions_active = 90;
  report.payload.load_centi[0] = 150;
  report.payload.flags = snapshot::kFlagCutActive;
  snapshot::copy_text(report.payload.cut_reason, "<img src=x onerror=alert(1)> & 'co'");
  report.payload.cut_since_wall_s = report.now_wall_s - 600;
  VhostStatus vhost;
  vhost.name = "<b>\"evil\"</b>.test";
  vhost.values.verdict = Verdict::coupure;
  vhost.has_sessions_limit = true;
  vhost.sessions_trip = 100;
  vhost.sessions_release = 80;
  report.vhosts.push_back(vhost);
  return report;
}

TEST(StatusPage, RefreshIsBounded) {
  EXPECT_EQ(parse_refresh("refresh=10"), 10U);
  EXPECT_EQ(parse_refresh("refresh=0"), kMinRefreshSeconds);
  EXPECT_EQ(parse_refresh("refresh=999999"), kMaxRefreshSeconds);
  for (const char* bad :
       {"", "json", "refresh=", "refresh=-1", "refresh=1e3", "refresh=10&x=1", "refresh=9999999", "xrefresh=10"}) {
    EXPECT_EQ(parse_refresh(bad), 0U) << bad;
  }
}

TEST(StatusPage, EscapesEveryOutsideText) {
  const std::string html = render_status_html(sample_report());
  // http-equiv: no refresh unless asked.
  for (const char* absent : {"<img", "<b>\"", "<cc>", "<script", "http-equiv"}) {
    EXPECT_EQ(html.find(absent), std::string::npos) << absent;
  }
  for (const char* escaped :
       {"&lt;img src=x onerror=alert(1)&gt; &amp; &#39;co&#39;", "&lt;b&gt;&quot;evil&quot;&lt;/b&gt;.test"}) {
    EXPECT_NE(html.find(escaped), std::string::npos) << escaped;
  }
}

TEST(StatusPage, StateInWordsAndBarAgainstTripAndRelease) {
  const std::string html = render_status_html(sample_report());
  EXPECT_NE(html.find("data-state=\"coupure\""), std::string::npos);
  EXPECT_NE(html.find("<span class=\"state coupure\">coupure</span>"), std::string::npos);
  // Scale: TRIP + a quarter = 125; value 90 -> 72 %, TRIP 80 %, RELEASE 64 %.
  EXPECT_NE(html.find("data-value=\"90\" data-trip=\"100\" data-release=\"80\" data-scale=\"125\""), std::string::npos);
  for (const char* style : {"style=\"width:72.0%\"", "style=\"left:80.0%\"", "style=\"left:64.0%\""}) {
    EXPECT_NE(html.find(style), std::string::npos) << style;
  }
}

TEST(StatusPage, ChartHasOnePointPerPointOfTheLastHour) {
  StatusReport report = sample_report();
  report.payload.flags = 0;
  report.vhosts[0].values.verdict = Verdict::ok;
  const std::int64_t now = report.now_wall_s;
  report.history.push_back({now - 4000, 1, 10, 0});  // older than an hour: not drawn
  for (std::int64_t t = now - 600; t < now - 300; t += 10) report.history.push_back({t, 50, 10, 0});
  for (std::int64_t t = now - 200; t < now; t += 10) {  // a gap of 100 s: "inconnu", then over TRIP
    report.history.push_back({t, 120, 10, t >= now - 50 ? history::kPointSessionsUnknown : 0U});
  }
  const std::string html = render_status_html(report);
  EXPECT_NE(html.find("data-points=\"50\" data-sessions-points=\"45\""), std::string::npos);
  std::size_t drawn = 0;
  const std::regex polyline("<polyline class=\"sessions\"[^>]* points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), polyline); it != std::sregex_iterator(); ++it) {
    drawn += count((*it)[1].str(), ",");
  }
  EXPECT_EQ(drawn, 45U);
  EXPECT_EQ(count(html, "<polyline class=\"sessions\""), 2U);  // broken at the gap
  EXPECT_EQ(count(html, "<polyline class=\"load\""), 2U);
  EXPECT_EQ(count(html, "class=\"band surcharge\""), 1U);  // 120 >= TRIP 100, kept while sessions unknown
  EXPECT_GE(count(html, "class=\"band inconnu\""), 2U);    // before the first point, and the gap
  EXPECT_EQ(count(html, "class=\"band coupure\""), 0U);
  EXPECT_EQ(count(html, "class=\"band ok\""), 1U);  // unknown sessions do not release
}

// ---- The cluster block: status page and Prometheus.

StatusReport cluster_report(std::uint32_t flags) {
  StatusReport report = sample_report();
  auto& c = report.payload.cluster;
  snapshot::copy_text(c.cluster_name, "prod-web");
  snapshot::copy_text(c.node_name, "web-2");
  snapshot::copy_text(c.lease_holder, "web-<1>");
  c.flags = snapshot::kClusterJoined | snapshot::kClusterRedisReachable | flags;
  c.nodes_live = 3;
  c.control_version = 17;
  c.lease_fencing = 4;
  c.counts_published_wall_ms = (report.now_wall_s - 5) * 1000;
  return report;
}

TEST(StatusPage, ClusterSectionNamesTheLeaseHolderAndWhereCountsComeFrom) {
  EXPECT_EQ(render_status_html(sample_report()).find("card cluster"), std::string::npos);  // not in a cluster
  const std::string html = render_status_html(cluster_report(snapshot::kClusterCountsFromPeer));
  for (const char* part : {"<section class=\"card cluster ok\" data-cluster=\"prod-web\">",
                           "<dd class=\"lease-holder\">web-&lt;1&gt;</dd>", "<dd class=\"nodes\">3</dd>", "version 17",
                           "from the lease holder web-&lt;1&gt;", "(fencing 4)"}) {
    EXPECT_NE(html.find(part), std::string::npos) << part;
  }
  const std::string stale = render_status_html(cluster_report(snapshot::kClusterCountsStale));
  EXPECT_NE(stale.find("card cluster coupure"), std::string::npos);
  EXPECT_NE(stale.find("<b>missing</b>"), std::string::npos);
}

TEST(StatusPrometheus, ClusterMetricsAndLeaseHolderAsThisNodeSeesIt) {
  EXPECT_EQ(render_status_prometheus(sample_report()).find("coupecircuit_cluster"), std::string::npos);
  const std::string peer = render_status_prometheus(cluster_report(snapshot::kClusterCountsFromPeer));
  for (const char* sample :
       {"coupecircuit_cluster_info{cluster=\"prod-web\",node=\"web-2\"} 1\n", "coupecircuit_cluster_nodes 3\n",
        "coupecircuit_cluster_control_version 17\n", "coupecircuit_cluster_redis_up 1\n",
        "coupecircuit_cluster_lease_holder{cluster=\"prod-web\",node=\"web-<1>\"} 1\n",
        "coupecircuit_cluster_lease_holder{cluster=\"prod-web\",node=\"web-2\"} 0\n",
        "coupecircuit_cluster_lease_fencing 4\n", "coupecircuit_cluster_counts_stale 0\n",
        "coupecircuit_cluster_counts_age_seconds "}) {
    EXPECT_NE(peer.find(sample), std::string::npos) << sample;
  }
  StatusReport holder = cluster_report(snapshot::kClusterLeaseHolder);
  snapshot::copy_text(holder.payload.cluster.lease_holder, "web-2");
  const std::string held = render_status_prometheus(holder);
  EXPECT_EQ(count(held, "coupecircuit_cluster_lease_holder{"), 1U);
  EXPECT_NE(held.find("coupecircuit_cluster_lease_holder{cluster=\"prod-web\",node=\"web-2\"} 1\n"), std::string::npos);
  const std::string stale = render_status_prometheus(cluster_report(snapshot::kClusterCountsStale));
  EXPECT_NE(stale.find("coupecircuit_cluster_counts_stale 1\n"), std::string::npos);
  // Files: each node counts its own, no lease figures.
  StatusReport files = cluster_report(0);
  files.payload.cluster.lease_fencing = 0;
  files.payload.cluster.counts_published_wall_ms = 0;
  files.payload.cluster.lease_holder[0] = '\0';
  EXPECT_EQ(render_status_prometheus(files).find("coupecircuit_cluster_counts_stale"), std::string::npos);
}

}  // namespace
}  // namespace coupecircuit::module

namespace coupecircuit::module {
namespace {

StatusReport probes_report(std::uint32_t extra_flags) {
  StatusReport report = sample_report();
  auto& p = report.payload;
  p.probe_flags = snapshot::kProbesConfigured | extra_flags;
  p.probe_count = 2;
  p.probes_updated_wall_s = report.now_wall_s - 3;
  std::strcpy(p.probes[0].name, "pg");
  p.probes[0].status = snapshot::kProbeUp;
  p.probes[0].flags = snapshot::kProbeCritical | snapshot::kProbeHasSaturation;
  p.probes[0].saturation_pct = 80;
  p.probes[0].latency_us = 1500;
  std::strcpy(p.probes[1].name, "es<x>");
  p.probes[1].status = snapshot::kProbeDown;
  std::strcpy(p.probes[1].last_error, "timeout <b>");
  std::strcpy(p.probes_down_text, "es<x>");
  return report;
}

TEST(StatusPrometheus, ProbeMetrics) {
  EXPECT_EQ(render_status_prometheus(sample_report()).find("coupecircuit_probe"), std::string::npos);
  const std::string fresh = render_status_prometheus(probes_report(0));
  EXPECT_NE(fresh.find("coupecircuit_probes_stale 0\n"), std::string::npos) << fresh;
  EXPECT_NE(fresh.find("coupecircuit_probe_up{probe=\"pg\"} 1\n"), std::string::npos);
  EXPECT_NE(fresh.find("coupecircuit_probe_up{probe=\"es<x>\"} 0\n"), std::string::npos);
  EXPECT_NE(fresh.find("coupecircuit_probe_latency_seconds{probe=\"pg\"} 0.0015"), std::string::npos);
  EXPECT_NE(fresh.find("coupecircuit_probe_saturation_ratio{probe=\"pg\"} 0.8"), std::string::npos);
  EXPECT_EQ(fresh.find("coupecircuit_probe_saturation_ratio{probe=\"es"), std::string::npos);
  // Stale: never up, never down.
  auto stale_report = probes_report(snapshot::kProbesStale);
  for (auto& entry : stale_report.payload.probes) entry.status = snapshot::kProbeUnknown;
  const std::string stale = render_status_prometheus(stale_report);
  EXPECT_NE(stale.find("coupecircuit_probes_stale 1\n"), std::string::npos);
  EXPECT_EQ(stale.find("coupecircuit_probe_up"), std::string::npos);
}

TEST(StatusPage, ProbesSectionEscapesNamesAndErrors) {
  const std::string html = render_status_html(probes_report(snapshot::kProbesCriticalDown));
  EXPECT_NE(html.find("<h2>Dependencies</h2>"), std::string::npos);
  EXPECT_NE(html.find("a critical probe is down"), std::string::npos);
  EXPECT_NE(html.find("80 %"), std::string::npos);
  EXPECT_EQ(html.find("es<x>"), std::string::npos);
  EXPECT_EQ(html.find("timeout <b>"), std::string::npos);
  EXPECT_NE(html.find("es&lt;x&gt;"), std::string::npos);
  EXPECT_EQ(render_status_html(sample_report()).find("Dependencies"), std::string::npos);
}

}  // namespace
}  // namespace coupecircuit::module
