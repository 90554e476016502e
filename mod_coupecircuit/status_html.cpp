// The coupecircuit-status handler's HTML page, for an operator during an
// incident, on a phone or a desktop: each vhost's state in colour and in
// words, each signal as a bar against its TRIP and RELEASE marks, the last
// transitions, the manual cut, the helper's health, and the last hour as an
// inline SVG chart. One self-contained document: no script, no external
// asset, dark or light by prefers-color-scheme. Counts only: the snapshot
// and the history hold no session id. Every text from outside (vhost names,
// the cut's reason, paths) is escaped.
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "decimal.hpp"
#include "probe_table.hpp"
#include "snapshot.hpp"
#include "status_report.hpp"

namespace coupecircuit::module {
namespace {

constexpr const char* kClassNames[] = {"empty", "anonymous", "unknown", "authenticated"};

std::string html_escape(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '&':
        escaped += "&amp;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

std::string centi(std::uint64_t value) {
  return centi_to_string(value);
}
std::string number(std::uint64_t value) {
  return std::to_string(value);
}

// "2026-11-30 08:31:02 UTC"
std::string utc_time(std::int64_t wall_s) {
  const auto seconds = static_cast<std::time_t>(wall_s);
  std::tm parts{};
  if (::gmtime_r(&seconds, &parts) == nullptr) return "?";
  char text[32];
  if (std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &parts) == 0) return "?";
  return text;
}

// "3 min ago", "2 h 5 min ago"
std::string ago(std::int64_t now_s, std::int64_t then_s) {
  const std::int64_t delta = now_s > then_s ? now_s - then_s : 0;
  if (delta < 60) return std::to_string(delta) + " s ago";
  if (delta < 3600) return std::to_string(delta / 60) + " min ago";
  if (delta < 86400) return std::to_string(delta / 3600) + " h " + std::to_string(delta % 3600 / 60) + " min ago";
  return std::to_string(delta / 86400) + " d ago";
}

std::string time_element(std::int64_t now_s, std::int64_t wall_s) {
  return "<time datetime=\"" + utc_time(wall_s).substr(0, 19) + "Z\">" + utc_time(wall_s) + "</time> (" +
         ago(now_s, wall_s) + ")";
}

// A percentage with one decimal, for widths and positions.
std::string percent(std::uint64_t part, std::uint64_t whole) {
  if (whole == 0) return "0";
  const std::uint64_t tenths = (part >= whole ? 1000 : part * 1000 / whole);
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10);
}

const char* state_meaning(Verdict verdict) noexcept {
  constexpr const char* kMeanings[] = {"below its thresholds", "tripped: a value reached its TRIP", "manual cut",
                                       "no fresh snapshot: thresholds cannot be judged"};
  return enum_name(verdict, kMeanings, "");
}

constexpr const char* kStyle = R"css(
:root{color-scheme:light dark;--bg:#fbfbfa;--fg:#1d1f21;--muted:#5c6166;--card:#fff;--line:#d5d8dc;
--ok:#1a7f37;--surcharge:#b35900;--coupure:#c62828;--inconnu:#5f6b76;--sessions:#1f5fbf;--load:#8a3ab9;
--track:#e7e9ec}
@media (prefers-color-scheme:dark){:root{--bg:#15171a;--fg:#e8eaed;--muted:#a4abb3;--card:#1e2125;
--line:#3a3f45;--ok:#3fb950;--surcharge:#f0883e;--coupure:#ff6b6b;--inconnu:#9aa5b1;--sessions:#6ea8fe;
--load:#d2a8ff;--track:#2c3137}}
*{box-sizing:border-box}
body{margin:0;padding:12px;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--fg)}
main{max-width:1100px;margin:0 auto}
h1{font-size:1.35em;margin:0 0 4px}h2{font-size:1.1em;margin:20px 0 8px}h3{font-size:1.05em;margin:0}
p{margin:4px 0}.muted{color:var(--muted)}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px;margin:10px 0;
border-left:6px solid var(--inconnu)}
.card.ok{border-left-color:var(--ok)}.card.surcharge{border-left-color:var(--surcharge)}
.card.coupure{border-left-color:var(--coupure)}
.head{display:flex;flex-wrap:wrap;gap:8px;align-items:center;justify-content:space-between}
.name{overflow-wrap:anywhere}
.state{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:700;color:#fff;
background:var(--inconnu);letter-spacing:.02em}
.state.ok{background:var(--ok)}.state.surcharge{background:var(--surcharge)}.state.coupure{background:var(--coupure)}
@media (prefers-color-scheme:dark){.state{color:#111}}
.signal{margin:10px 0 4px}
.signal .label{display:flex;flex-wrap:wrap;justify-content:space-between;gap:4px 12px}
.bar{position:relative;height:14px;background:var(--track);border-radius:4px;margin-top:4px}
.fill{position:absolute;left:0;top:0;bottom:0;border-radius:4px;background:var(--ok)}
.fill.high{background:var(--surcharge)}.fill.over{background:var(--coupure)}
.mark{position:absolute;top:-3px;bottom:-3px;width:3px;margin-left:-1px;background:var(--fg)}
.mark.release{background:var(--muted);width:2px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:8px 0 0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;margin-top:6px}th,td{padding:2px 10px 2px 0;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}

svg.chart{width:100%;height:auto;display:block;margin-top:8px}
svg.chart text{fill:var(--muted);font-size:15px}
.card h2{margin:0}
@media (max-width:480px){body{padding:6px}.card{padding:8px;border-left-width:5px}dl{gap:0 8px}}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.9em;color:var(--muted)}
.legend span::before{content:"";display:inline-block;width:12px;height:12px;border-radius:2px;
margin-right:4px;vertical-align:-1px;background:currentColor}
.legend .ok{color:var(--ok)}.legend .surcharge{color:var(--surcharge)}.legend .coupure{color:var(--coupure)}
.legend .inconnu{color:var(--inconnu)}.legend .sessions{color:var(--sessions)}.legend .load{color:var(--load)}
)css";

// One signal of a vhost as a bar: the value against TRIP and RELEASE. The
// scale ends a quarter beyond TRIP (or at the value, if higher), so that
// TRIP sits at the same place on every bar of a healthy node.
void render_signal(std::string& out, const char* kind, const char* label, bool known, std::uint64_t value,
                   std::uint64_t trip, std::uint64_t release, bool is_centi) {
  const std::uint64_t room = trip + (trip + 3) / 4;
  const std::uint64_t scale = value > room ? value : room;
  const auto text = [&](std::uint64_t v) { return is_centi ? centi(v) : number(v); };
  const char* level = !known ? "" : value >= trip ? " over" : value > release ? " high" : "";
  out += "<div class=\"signal\" data-signal=\"";
  out += kind;
  out += "\" data-value=\"" + (known ? text(value) : std::string("unknown")) + "\" data-trip=\"" + text(trip) +
         "\" data-release=\"" + text(release) + "\" data-scale=\"" + text(scale) + "\">\n";
  out += "<div class=\"label\"><span>";
  out += label;
  out += " <b>" + (known ? text(value) : std::string("unknown")) + "</b></span><span class=\"muted\">TRIP " +
         text(trip) + " · RELEASE " + text(release) + "</span></div>\n";
  out += "<div class=\"bar\" role=\"img\" aria-label=\"";
  out += label;
  out += " " + (known ? text(value) : std::string("unknown")) + " of TRIP " + text(trip) + "\">";
  if (known)
    out += "<div class=\"fill" + std::string(level) + "\" style=\"width:" + percent(value, scale) + "%\"></div>";
  out += "<div class=\"mark release\" title=\"RELEASE " + text(release) + "\" style=\"left:" + percent(release, scale) +
         "%\"></div><div class=\"mark trip\" title=\"TRIP " + text(trip) + "\" style=\"left:" + percent(trip, scale) +
         "%\"></div></div>\n</div>\n";
}

// ---- The chart of the last hour

constexpr int kChartWidth = 720;
constexpr int kPlotLeft = 44;
constexpr int kPlotRight = 660;
constexpr int kPlotTop = 10;
constexpr int kPlotBottom = 170;
constexpr int kBandTop = 178;
constexpr int kBandHeight = 12;
constexpr int kChartHeight = 214;

struct Band {
  std::int64_t from;
  std::int64_t to;
  Verdict state;
};

// Consecutive bands of one state are merged into one.
class BandList {
 public:
  void add(std::int64_t from, std::int64_t to, Verdict state) {
    if (to <= from) return;
    if (!bands_.empty() && bands_.back().state == state && bands_.back().to == from) {
      bands_.back().to = to;
    } else {
      bands_.push_back({from, to, state});
    }
  }
  std::vector<Band> take() { return std::move(bands_); }

 private:
  std::vector<Band> bands_;
};

// The vhost's hysteresis, replayed point by point with the module's own
// threshold check on a payload holding each point's values in turn.
class HysteresisReplay {
 public:
  HysteresisReplay(const HysteresisReplay&) = delete;  // thresholds_ points into this object
  HysteresisReplay& operator=(const HysteresisReplay&) = delete;
  explicit HysteresisReplay(const VhostStatus& vhost)
      : vhost_(vhost),
        thresholds_{vhost.has_sessions_limit ? &sessions_set_ : nullptr, vhost.has_load_limit ? &load_set_ : nullptr} {
    sessions_set_.has_sessions = vhost.has_sessions_limit ? 1 : 0;
    sessions_set_.sessions = vhost.sessions_trip;
    load_set_.has_load = vhost.has_load_limit ? 1 : 0;
    load_set_.load_centi = vhost.load_trip_centi;
  }

  // The state during the interval that starts at this point.
  Verdict step(const history::Point& point) {
    scratch_->sessions_active = point.sessions;
    scratch_->load_centi[0] = point.load1_centi;
    scratch_->flags = (point.flags & history::kPointSessionsUnknown) != 0 ? snapshot::kFlagScanFailed : 0U;
    const ThresholdCheck check =
        check_thresholds(*scratch_, thresholds_, vhost_.sessions_release, vhost_.load_release_centi);
    const bool over = check.over;
    const bool high = !check.under;
    const bool held = point.wall_s - changed_at_ >= static_cast<std::int64_t>(vhost_.hold_seconds);
    if ((tripped_ ? !high : over) && held) {
      tripped_ = !tripped_;
      changed_at_ = point.wall_s;
    }
    if ((point.flags & history::kPointCut) != 0) return Verdict::coupure;
    return tripped_ ? Verdict::surcharge : Verdict::ok;
  }

 private:
  const VhostStatus& vhost_;
  snapshot::ThresholdSet sessions_set_{};
  snapshot::ThresholdSet load_set_{};
  EffectiveThresholds thresholds_;
  std::unique_ptr<snapshot::Payload> scratch_ = std::make_unique<snapshot::Payload>();
  bool tripped_ = false;
  std::int64_t changed_at_ = INT64_MIN / 2;
};

// The vhost's state at each point: its hysteresis replayed on the 10 s
// points with its current thresholds and hold; a gap in the points (the
// helper stopped) is "inconnu".
std::vector<Band> state_bands(const StatusReport& report, const VhostStatus& vhost, std::int64_t start) {
  BandList bands;
  HysteresisReplay replay(vhost);
  std::int64_t previous_end = start;
  for (const history::Point& point : report.history) {
    if (point.wall_s < start) continue;
    if (point.wall_s > previous_end) bands.add(previous_end, point.wall_s, Verdict::inconnu);
    const std::int64_t end = point.wall_s + history::kIntervalSeconds;
    bands.add(point.wall_s, end, replay.step(point));
    previous_end = end;
  }
  if (previous_end < report.now_wall_s) bands.add(previous_end, report.now_wall_s, Verdict::inconnu);
  return bands.take();
}

int x_of(std::int64_t wall_s, std::int64_t start) {
  const std::int64_t offset = wall_s < start                           ? 0
                              : wall_s - start > history::kSpanSeconds ? history::kSpanSeconds
                                                                       : wall_s - start;
  return kPlotLeft + static_cast<int>(offset * (kPlotRight - kPlotLeft) / history::kSpanSeconds);
}

int y_of(std::uint64_t value, std::uint64_t scale) {
  const std::uint64_t bounded = value > scale ? scale : value;
  return kPlotBottom - static_cast<int>(bounded * static_cast<std::uint64_t>(kPlotBottom - kPlotTop) / scale);
}

// A rounded top for an axis: 1, 2, 5 times a power of ten, at least `value`.
std::uint64_t nice_scale(std::uint64_t value) {
  std::uint64_t step = 1;
  for (;;) {
    for (const std::uint64_t factor : {1U, 2U, 5U}) {
      if (step * factor >= value) return step * factor;
    }
    step *= 10;
  }
}

// Polylines of one series, broken where the points are more than two
// intervals apart; points_out counts the points drawn.
void series(std::string& out, const char* css_class, const StatusReport& report, std::int64_t start,
            std::uint64_t scale, bool load) {
  std::string points;
  std::int64_t previous = INT64_MIN;
  const auto flush = [&] {
    if (points.empty()) return;
    out += "<polyline class=\"";
    out += css_class;
    out += "\" fill=\"none\" stroke=\"var(--";
    out += css_class;
    out += ")\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"" + points + "\"/>\n";
    points.clear();
  };
  for (const history::Point& point : report.history) {
    if (point.wall_s < start) continue;
    if (!load && (point.flags & history::kPointSessionsUnknown) != 0) {
      flush();
      previous = INT64_MIN;
      continue;
    }
    if (point.wall_s - previous > 2 * history::kIntervalSeconds) flush();
    const std::uint64_t value = load ? point.load1_centi : point.sessions;
    if (!points.empty()) points += ' ';
    points += std::to_string(x_of(point.wall_s, start)) + "," + std::to_string(y_of(value, scale));
    previous = point.wall_s;
  }
  flush();
}

// State bands: a strip under the plot and a light tint behind it.
void render_bands(std::string& out, const StatusReport& report, const VhostStatus& vhost, std::int64_t start) {
  for (const Band& band : state_bands(report, vhost, start)) {
    const int x = x_of(band.from, start);
    const int width = x_of(band.to, start) - x;
    if (width <= 0) continue;
    const std::string colour = std::string("var(--") + verdict_word(band.state) + ")";
    out += "<rect class=\"band " + std::string(verdict_word(band.state)) + "\" x=\"" + std::to_string(x) + "\" y=\"" +
           std::to_string(kBandTop) + "\" width=\"" + std::to_string(width) + "\" height=\"" +
           std::to_string(kBandHeight) + "\" fill=\"" + colour + "\"><title>" + verdict_word(band.state) + " from " +
           utc_time(band.from) + " to " + utc_time(band.to) + "</title></rect>\n";
    if (band.state != Verdict::ok) {
      out += "<rect x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(kPlotTop) + "\" width=\"" +
             std::to_string(width) + "\" height=\"" + std::to_string(kPlotBottom - kPlotTop) + "\" fill=\"" + colour +
             "\" fill-opacity=\"0.12\"/>\n";
    }
  }
}

void render_chart(std::string& out, const StatusReport& report, const VhostStatus& vhost) {
  const std::int64_t start = report.now_wall_s - history::kSpanSeconds;
  std::uint64_t max_sessions = vhost.has_sessions_limit ? vhost.sessions_trip : 1;
  std::uint64_t max_load = vhost.has_load_limit ? vhost.load_trip_centi : 100;
  std::size_t drawn = 0;
  std::size_t sessions_points = 0;
  for (const history::Point& point : report.history) {
    if (point.wall_s < start) continue;
    ++drawn;
    if ((point.flags & history::kPointSessionsUnknown) == 0) {
      ++sessions_points;
      if (point.sessions > max_sessions) max_sessions = point.sessions;
    }
    if (point.load1_centi > max_load) max_load = point.load1_centi;
  }
  const std::uint64_t sessions_scale = nice_scale(max_sessions + max_sessions / 10 + 1);
  const std::uint64_t load_scale = nice_scale(max_load + max_load / 10 + 1);

  out += "<figure>\n<svg class=\"chart\" viewBox=\"0 0 " + std::to_string(kChartWidth) + " " +
         std::to_string(kChartHeight) + "\" role=\"img\" data-points=\"" + std::to_string(drawn) +
         "\" data-sessions-points=\"" + std::to_string(sessions_points) + "\" aria-label=\"Last hour of " +
         html_escape(vhost.name) +
         ": active sessions, load average and state\" xmlns=\"http://www.w3.org/2000/svg\">\n";
  render_bands(out, report, vhost, start);
  // Frame, time axis (minutes before now), scales.
  out += "<rect x=\"" + std::to_string(kPlotLeft) + "\" y=\"" + std::to_string(kPlotTop) + "\" width=\"" +
         std::to_string(kPlotRight - kPlotLeft) + "\" height=\"" + std::to_string(kPlotBottom - kPlotTop) +
         "\" fill=\"none\" stroke=\"var(--line)\"/>\n";
  for (int minutes = 60; minutes >= 0; minutes -= 15) {
    const int x = x_of(report.now_wall_s - minutes * 60, start);
    out += "<text x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(kChartHeight - 8) +
           "\" text-anchor=\"middle\">" + (minutes == 0 ? std::string("now") : "-" + std::to_string(minutes) + " min") +
           "</text>\n";
  }
  out += "<text x=\"" + std::to_string(kPlotLeft - 4) + "\" y=\"" + std::to_string(kPlotTop + 10) +
         "\" text-anchor=\"end\">" + number(sessions_scale) + "</text>\n<text x=\"" + std::to_string(kPlotLeft - 4) +
         "\" y=\"" + std::to_string(kPlotBottom) + "\" text-anchor=\"end\">0</text>\n<text x=\"" +
         std::to_string(kPlotRight + 4) + "\" y=\"" + std::to_string(kPlotTop + 10) + "\">" + centi(load_scale) +
         "</text>\n<text x=\"" + std::to_string(kPlotRight + 4) + "\" y=\"" + std::to_string(kPlotBottom) +
         "\">0</text>\n";
  // TRIP lines.
  if (vhost.has_sessions_limit) {
    const std::string y = std::to_string(y_of(vhost.sessions_trip, sessions_scale));
    out += "<line class=\"trip sessions\" x1=\"" + std::to_string(kPlotLeft) + "\" x2=\"" + std::to_string(kPlotRight) +
           "\" y1=\"" + y + "\" y2=\"" + y + "\" stroke=\"var(--sessions)\" stroke-dasharray=\"6 4\"/>\n";
  }
  if (vhost.has_load_limit) {
    const std::string y = std::to_string(y_of(vhost.load_trip_centi, load_scale));
    out += "<line class=\"trip load\" x1=\"" + std::to_string(kPlotLeft) + "\" x2=\"" + std::to_string(kPlotRight) +
           "\" y1=\"" + y + "\" y2=\"" + y + "\" stroke=\"var(--load)\" stroke-dasharray=\"2 3\"/>\n";
  }
  series(out, "sessions", report, start, sessions_scale, false);
  series(out, "load", report, start, load_scale, true);
  out += "</svg>\n<figcaption class=\"legend\"><span class=\"sessions\">active sessions (left, 0–" +
         number(sessions_scale) + ")</span><span class=\"load\">load 1 min (right, 0–" + centi(load_scale) +
         ")</span><span class=\"ok\">ok</span><span class=\"surcharge\">surcharge</span><span "
         "class=\"coupure\">coupure</span><span class=\"inconnu\">inconnu (no data)</span></figcaption>\n";
  if (drawn == 0) {
    out += "<p class=\"muted\">No history yet";
    if (!report.history_error.empty()) out += " (" + html_escape(report.history_error) + ")";
    out += ".</p>\n";
  }
  out += "</figure>\n";
}

void render_transitions(std::string& out, const StatusReport& report, const VhostStatus& vhost) {
  const SlotTransitions& t = vhost.transitions;
  out += "<dl class=\"transitions\">\n<dt>Tripped at</dt><dd class=\"tripped-at\">";
  out += t.tripped_at_wall_s != 0 ? time_element(report.now_wall_s, t.tripped_at_wall_s) : std::string("never");
  out += "</dd>\n<dt>Reason</dt><dd class=\"trip-reason\">";
  if (t.tripped_at_wall_s == 0) {
    out += "–";
  } else {
    std::string reasons;
    if ((t.trip_reasons & kTripReasonSessions) != 0) reasons = "sessions";
    if ((t.trip_reasons & kTripReasonLoad) != 0) reasons += reasons.empty() ? "load" : " and load";
    if ((t.trip_reasons & kTripReasonSaturation) != 0) reasons += reasons.empty() ? "saturation" : " and saturation";
    out += reasons.empty() ? std::string("threshold reached") : reasons + " above RELEASE, one at its TRIP";
  }
  out += "</dd>\n<dt>Released at</dt><dd class=\"released-at\">";
  out += t.released_at_wall_s != 0 && t.released_at_wall_s >= t.tripped_at_wall_s
             ? time_element(report.now_wall_s, t.released_at_wall_s)
             : std::string(t.tripped_at_wall_s != 0 ? "not yet" : "–");
  out += "</dd>\n<dt>Trips</dt><dd class=\"trips\">" + number(vhost.trips) + " since Apache started · hold " +
         number(vhost.hold_seconds) + " s</dd>\n</dl>\n";
}

void render_vhost(std::string& out, const StatusReport& report, const VhostStatus& vhost) {
  const Verdict verdict = vhost.values.verdict;
  const char* word = verdict_word(verdict);
  out += "<article class=\"card vhost " + std::string(word) + "\" data-state=\"" + word + "\">\n<div class=\"head\">";
  out += "<h3 class=\"name\">" + html_escape(vhost.name) + "</h3><span class=\"state " + word + "\">" + word +
         "</span></div>\n<p class=\"muted meaning\">" + state_meaning(verdict) + "</p>\n";
  const snapshot::Payload& p = report.payload;
  const bool values = report.has_payload;
  const bool sessions_known = values && snapshot::sessions_known(p);
  if (vhost.has_sessions_limit) {
    render_signal(out, "sessions", "Active sessions", sessions_known, p.sessions_active, vhost.sessions_trip,
                  vhost.sessions_release, false);
  }
  if (vhost.has_load_limit) {
    render_signal(out, "load", "Load 1 min", values, p.load_centi[0], vhost.load_trip_centi, vhost.load_release_centi,
                  true);
  }
  if (!vhost.has_sessions_limit && !vhost.has_load_limit) {
    out += "<p class=\"muted\">No threshold: this vhost never trips (the manual cut still applies).</p>\n";
  }
  render_transitions(out, report, vhost);
  render_chart(out, report, vhost);
  out += "</article>\n";
}

// The document's head and the page title with the time of the report.
void render_page_head(std::string& out, const StatusReport& report) {
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  if (report.refresh_seconds != 0) {
    out += "<meta http-equiv=\"refresh\" content=\"" + std::to_string(report.refresh_seconds) + "\">\n";
  }
  out += "<title>CoupeCircuit status</title>\n<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n<main>\n";
  out += "<h1>CoupeCircuit</h1>\n<p class=\"muted\">At " + utc_time(report.now_wall_s);
  if (report.refresh_seconds != 0) out += " · refreshed every " + std::to_string(report.refresh_seconds) + " s";
  out += "</p>\n";
}

// The helper's last scan: when and how long, or why the sessions are unknown.
std::string last_scan_text(const StatusReport& report) {
  const snapshot::Payload& p = report.payload;
  if (!snapshot::sessions_known(p)) return "<b>the session store cannot be read</b>: sessions unknown";
  if (p.last_scan_wall_ns == 0) return "none yet";
  return time_element(report.now_wall_s, p.last_scan_wall_ns / 1'000'000'000LL) + ", " +
         number(p.last_scan_duration_us / 1000) + " ms";
}

// The helper and its snapshot.
void render_helper(std::string& out, const StatusReport& report) {
  const auto health = to_string(report.health);
  const char* css = report.health == Health::fresh ? "ok" : "coupure";
  out += "<section class=\"card helper " + std::string(css) + "\" data-health=\"" + health +
         "\">\n<div class=\"head\"><h2>Helper</h2><span class=\"state " + css + "\">snapshot " + health +
         "</span></div>\n<dl>\n";
  out += "<dt>Snapshot</dt><dd>" + html_escape(report.snapshot_path) + "</dd>\n";
  if (report.has_payload) {
    const auto& p = report.payload;
    out += "<dt>Age</dt><dd class=\"age\">" + number(report.age_seconds) + " s since the last heartbeat</dd>\n";
    out += "<dt>coupecircuitd</dt><dd>pid " + number(p.writer_pid) + ", snapshot " + number(p.snapshot_sequence) +
           "</dd>\n";
    out += "<dt>Last scan</dt><dd>" + last_scan_text(report) + "</dd>\n";
    if ((p.flags & snapshot::kFlagStateInvalid) != 0) {
      out += "<dt>State file</dt><dd><b>unreadable</b>: the last good cut and thresholds are kept</dd>\n";
    }
  } else {
    out += "<dt>Age</dt><dd class=\"age\">no snapshot: every vhost is inconnu</dd>\n";
  }
  out += "</dl>\n";
  if (report.has_payload && report.health != Health::fresh) {
    out +=
        "<p><b>The helper has stopped publishing:</b> the values below are the last ones it published, "
        "every vhost is inconnu until it is back.</p>\n";
  }
  out += "</section>\n";
}

// The manual cut: on or off, and when on its reason and since when.
void render_cut(std::string& out, const StatusReport& report) {
  const auto& p = report.payload;
  const bool cut = (p.flags & snapshot::kFlagCutActive) != 0;
  out += "<section class=\"card cut " + std::string(cut ? "coupure" : "ok") + "\" data-cut=\"" + (cut ? "on" : "off") +
         "\">\n<div class=\"head\"><h2>Manual cut</h2><span class=\"state " + (cut ? "coupure" : "ok") + "\">" +
         (cut ? "on" : "off") + "</span></div>\n";
  if (cut) {
    out += "<dl><dt>Reason</dt><dd class=\"cut-reason\">" +
           (p.cut_reason[0] != '\0'
                ? html_escape(std::string_view(p.cut_reason, ::strnlen(p.cut_reason, sizeof p.cut_reason)))
                : std::string("(none given)")) +
           "</dd>\n<dt>Since</dt><dd>" +
           (p.cut_since_wall_s != 0 ? time_element(report.now_wall_s, p.cut_since_wall_s) : std::string("?")) +
           "</dd></dl>\n<p class=\"muted\">Ended by <code>coupecircuitctl cut off</code>.</p>\n";
  }
  out += "</section>\n";
}

// The node's signals, the refused requests and the session files by class.
void render_node(std::string& out, const StatusReport& report) {
  const auto& p = report.payload;
  out += "<section class=\"card node ok\">\n<h2>Node</h2>\n<dl>\n<dt>Active sessions</dt><dd>";
  out += !snapshot::sessions_known(p) ? std::string("unknown") : number(p.sessions_active);
  out += " (active: modified in the last " + number(p.active_minutes) + " min)</dd>\n<dt>Load average</dt><dd>" +
         centi(p.load_centi[0]) + " · " + centi(p.load_centi[1]) + " · " + centi(p.load_centi[2]) +
         "</dd>\n<dt>Memory available</dt><dd>" + centi(p.mem_available_centi_pct) + " %</dd>\n<dt>Swap used</dt><dd>" +
         centi(p.swap_used_centi_pct) + " %</dd>\n";
  if ((p.flags & snapshot::kFlagPsiAvailable) != 0) {
    out += "<dt>Pressure (some, 10 s)</dt><dd>cpu " + centi(p.psi_some_avg10_centi[0]) + " % · memory " +
           centi(p.psi_some_avg10_centi[1]) + " % · io " + centi(p.psi_some_avg10_centi[2]) + " %</dd>\n";
  }
  out += "<dt>Requests refused</dt><dd>coupure " + number(report.shed[0]) + " · surcharge " + number(report.shed[1]) +
         " (since Apache started)</dd>\n</dl>\n";
  out += "<table>\n<tr><th>Session files</th><th>active</th><th>inactive</th></tr>\n";
  for (std::size_t i = 0; i < 4; ++i) {
    out += std::string("<tr><td>") + kClassNames[i] + "</td><td class=\"n\">" + number(p.count_active[i]) +
           "</td><td class=\"n\">" + number(p.count_inactive[i]) + "</td></tr>\n";
  }
  out += "<tr><td>not read</td><td class=\"n\">–</td><td class=\"n\">" + number(p.count_inactive_unread) +
         "</td></tr>\n</table>\n</section>\n";
}

template <std::size_t N>
std::string fixed_html(const char (&text)[N]) {
  return html_escape(std::string_view(text, ::strnlen(text, N)));
}

// Where this node's session counts come from in a cluster: counted here
// (files, or the lease holder), the holder's, or none (stale).
std::string counts_source_text(const StatusReport& report) {
  const auto& c = report.payload.cluster;
  const bool stale = (c.flags & snapshot::kClusterCountsStale) != 0;
  std::string text;
  if ((c.flags & snapshot::kClusterLeaseHolder) != 0 && !stale) {
    text = "counted here (this node holds the session lease)";
  } else if ((c.flags & snapshot::kClusterCountsFromPeer) != 0) {
    text = "from the lease holder " + fixed_html(c.lease_holder);
  } else if (stale) {
    text = "<b>missing</b>: the lease holder's counts are stale or not published, sessions unknown";
  } else {
    return "counted here (session files: each node counts its own)";
  }
  if (c.counts_published_wall_ms > 0) {
    text += ", published " + time_element(report.now_wall_s, c.counts_published_wall_ms / 1000) + " (fencing " +
            number(c.lease_fencing) + ")";
  }
  return text;
}

// The cluster this node belongs to: Redis, control state, the lease.
void render_cluster(std::string& out, const StatusReport& report) {
  const auto& c = report.payload.cluster;
  if ((c.flags & snapshot::kClusterJoined) == 0) return;
  const bool reachable = (c.flags & snapshot::kClusterRedisReachable) != 0;
  const bool stale = (c.flags & snapshot::kClusterCountsStale) != 0;
  const char* css = reachable && !stale ? "ok" : "coupure";
  out += "<section class=\"card cluster " + std::string(css) + "\" data-cluster=\"" + fixed_html(c.cluster_name) +
         "\">\n<div class=\"head\"><h2>Cluster " + fixed_html(c.cluster_name) + "</h2><span class=\"state " + css +
         "\">" + (reachable ? "Redis reachable" : "Redis unreachable") + "</span></div>\n<dl>\n";
  out += "<dt>This node</dt><dd>" + fixed_html(c.node_name) + "</dd>\n";
  out += "<dt>Nodes live</dt><dd class=\"nodes\">" + number(c.nodes_live) + "</dd>\n";
  out += "<dt>Control state</dt><dd>version " + number(c.control_version) +
         ((c.flags & snapshot::kClusterCutLocal) != 0 ? ", cut set on this node only (--local)" : "") +
         ((c.flags & snapshot::kClusterLocalChangeUnsynced) != 0 ? ", <b>a local change made while Redis was "
                                                                   "unreachable</b>"
                                                                 : "") +
         "</dd>\n";
  if (!reachable && c.redis_last_contact_wall_s > 0) {
    out += "<dt>Last contact</dt><dd>" + time_element(report.now_wall_s, c.redis_last_contact_wall_s) +
           ": the last known cut and thresholds are kept</dd>\n";
  }
  out += "<dt>Lease holder</dt><dd class=\"lease-holder\">" +
         (c.lease_holder[0] != '\0' ? fixed_html(c.lease_holder) : std::string("none seen")) + "</dd>\n";
  out += "<dt>Session counts</dt><dd class=\"counts-source\">" + counts_source_text(report) + "</dd>\n";
  out += "</dl>\n</section>\n";
}

// The dependency probes (coupecircuit-probes), when configured.
void render_probes(std::string& out, const StatusReport& report) {
  const auto& p = report.payload;
  if (!probe_table::configured(p)) return;
  const bool fresh = probe_table::fresh(p);
  const bool critical_down = fresh && (p.probe_flags & snapshot::kProbesCriticalDown) != 0;
  const char* css = !fresh ? "inconnu" : critical_down ? "coupure" : p.probes_down_text[0] != '\0' ? "surcharge" : "ok";
  const char* state = !fresh ? "results stale: every probe unknown" : critical_down ? "a critical probe is down" : "";
  out += std::string("<section class=\"card probes ") + css + "\">\n<div class=\"head\"><h2>Dependencies</h2>";
  if (state[0] != '\0') out += std::string("<span class=\"state ") + css + "\">" + state + "</span>";
  out +=
      "</div>\n<table>\n<tr><th>Probe</th><th>state</th><th>latency</th><th>saturation</th><th>since</th>"
      "<th>last error</th></tr>\n";
  for (std::uint32_t i = 0; i < probe_table::count(p); ++i) {
    const auto& entry = p.probes[i];
    const std::string status = probe_table::status_name(entry.status);
    out += "<tr class=\"probe " + status + "\"><td>" + fixed_html(entry.name) +
           ((entry.flags & snapshot::kProbeCritical) != 0 ? " <small>critical</small>" : "") + "</td><td>" + status +
           "</td><td class=\"n\">" + centi(entry.latency_us / 10) + " ms</td><td class=\"n\">" +
           (probe_table::has_saturation(entry) ? number(entry.saturation_pct) + " %" : std::string("–")) + "</td><td>" +
           (entry.since_wall_s > 0 ? time_element(report.now_wall_s, entry.since_wall_s) : std::string("–")) +
           "</td><td>" + fixed_html(entry.last_error) + "</td></tr>\n";
  }
  out += "</table>\n";
  if (p.probes_updated_wall_s > 0) {
    out += "<p class=\"muted\">Results written " + time_element(report.now_wall_s, p.probes_updated_wall_s) +
           " by coupecircuit-probes.</p>\n";
  }
  out += "</section>\n";
}

}  // namespace

unsigned parse_refresh(std::string_view query) noexcept {
  constexpr std::string_view kKey = "refresh=";
  if (query.substr(0, kKey.size()) != kKey) return 0;
  const std::string_view digits = query.substr(kKey.size());
  if (digits.empty() || digits.size() > 6) return 0;
  unsigned value = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value < kMinRefreshSeconds ? kMinRefreshSeconds : value > kMaxRefreshSeconds ? kMaxRefreshSeconds : value;
}

std::string render_status_html(const StatusReport& report) {
  std::string out;
  out.reserve(64 * 1024);
  render_page_head(out, report);
  render_helper(out, report);
  if (report.has_payload) {
    render_cut(out, report);
    render_cluster(out, report);
    render_node(out, report);
    render_probes(out, report);
  }
  out += "<h2>Virtual hosts</h2>\n";
  for (const VhostStatus* vhost : vhosts_by_name(report)) render_vhost(out, report, *vhost);
  out +=
      "<p class=\"muted\">Counts only: no session id or content is ever shown. Also as <a "
      "href=\"?json\">JSON</a> and <a href=\"?prometheus\">Prometheus</a>; <a href=\"?refresh=10\">refresh every "
      "10 s</a>.</p>\n</main>\n</body>\n</html>\n";
  return out;
}

}  // namespace coupecircuit::module
