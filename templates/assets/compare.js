/* The compare page: any two runs (or two cells of one run), per cell, prompt and metric.
 *
 * A port of sitegen/verdicts.py and sitegen/compare.py (compare_row, differences,
 * compare_cells): the same Hodges-Lehmann shift of log values, the same Mann-Whitney U
 * test (exact without ties and up to exact_max_n calls a side, else the normal
 * approximation with tie and continuity corrections), the same interval ranks,
 * thresholds, minimum calls and reasons, and Python's own rounding for every number
 * shown, so the page says what `sitegen compare` says. Data: compare/index.json and
 * runs/<id>/samples.json, fetched relative to this page. No dependencies; every text
 * from the archive is inserted as text, never as markup.
 */
(function (global) {
  "use strict";

  // ------------------------------------------------------------ Python's number formats

  var SCALE = 100; // digits after the point that Number.prototype.toFixed gives exactly

  /* |x| * 10^SCALE as a BigInt: the exact decimal value of a double (up to 1e21). */
  function exact(x) {
    var s = Math.abs(x).toFixed(SCALE);
    var dot = s.indexOf(".");
    return BigInt(s.slice(0, dot) + s.slice(dot + 1));
  }

  function pow10(k) {
    return BigInt("1" + "0".repeat(k));
  }

  /* |x| rounded to `decimals` places (may be negative), half to even, times 10^decimals. */
  function rounded(x, decimals) {
    var n = exact(x);
    var div = pow10(SCALE - decimals);
    var q = n / div;
    var r2 = (n % div) * 2n;
    if (r2 > div || (r2 === div && q % 2n === 1n)) q += 1n;
    return q;
  }

  function negative(x) {
    return x < 0 || Object.is(x, -0);
  }

  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  /* Python's format(x, "[+][,].Nf"). */
  function fixed(x, decimals, plus, comma) {
    if (!isFinite(x)) return isNaN(x) ? "nan" : negative(x) ? "-inf" : (plus ? "+" : "") + "inf";
    var digits = rounded(x, decimals).toString().padStart(decimals + 1, "0");
    var whole = digits.slice(0, digits.length - decimals);
    var frac = digits.slice(digits.length - decimals);
    var text = (comma ? group(whole) : whole) + (decimals > 0 ? "." + frac : "");
    return (negative(x) ? "-" : plus ? "+" : "") + text;
  }

  /* Python's format(x, ".Ng") (N = 6 for a bare "g"). */
  function general(x, precision) {
    if (precision === undefined) precision = 6;
    if (!isFinite(x)) return isNaN(x) ? "nan" : negative(x) ? "-inf" : "inf";
    var sign = negative(x) ? "-" : "";
    if (x === 0) return sign + "0";
    var e = exact(x).toString().length - 1 - SCALE;
    var q = rounded(x, precision - 1 - e);
    if (q.toString().length > precision) e += 1; // 9.99 -> 10.0
    if (e >= -4 && e < precision) {
      var text = fixed(Math.abs(x), precision - 1 - e, false, false);
      if (text.indexOf(".") >= 0) text = text.replace(/0+$/, "").replace(/\.$/, "");
      return sign + text;
    }
    var mant = rounded(x, precision - 1 - e).toString().slice(0, precision);
    var m = mant.length > 1 ? mant[0] + "." + mant.slice(1) : mant;
    if (m.indexOf(".") >= 0) m = m.replace(/0+$/, "").replace(/\.$/, "");
    var ex = Math.abs(e);
    return sign + m + "e" + (e < 0 ? "-" : "+") + (ex < 10 ? "0" : "") + ex;
  }

  /* Python's round(x, digits): the nearest double to the correctly rounded decimal. */
  function roundTo(x, digits) {
    return Number(fixed(x, digits, false, false));
  }

  // ------------------------------------------------------------ statistics

  function quantile(sorted, q) {
    var h = (sorted.length - 1) * q;
    var lo = Math.floor(h);
    var hi = Math.min(lo + 1, sorted.length - 1);
    return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
  }

  function numeric(a, b) {
    return a - b;
  }

  function spreadOf(values) {
    if (!values.length) return null;
    var s = values.slice().sort(numeric);
    return { p50: quantile(s, 0.5), p25: quantile(s, 0.25), p75: quantile(s, 0.75), n: s.length };
  }

  function comb(n, k) {
    var out = 1n;
    for (var i = 1; i <= k; i++) out = (out * BigInt(n - k + i)) / BigInt(i);
    return out;
  }

  function bitLength(v) {
    return v === 0n ? 0 : v.toString(2).length;
  }

  /* a / b for BigInts 0 <= a <= b, correctly rounded as Python's int / int. */
  function ratio(a, b) {
    if (a === 0n) return 0;
    var k = bitLength(b) - bitLength(a) + 53;
    var num = k >= 0 ? a << BigInt(k) : a >> BigInt(-k);
    var q = num / b;
    while (q >= 1n << 53n) {
      k -= 1;
      num = k >= 0 ? a << BigInt(k) : a >> BigInt(-k);
      q = num / b;
    }
    var r2 = (num - q * b) * 2n;
    if (r2 > b || (r2 === b && q % 2n === 1n)) q += 1n;
    return Number(q) / Math.pow(2, k);
  }

  var cdfs = {};

  /* P(U <= u) for u = 0..m*n under the null (no ties), from the counts of orderings. */
  function uCdf(m, n) {
    var key = m + "," + n;
    if (cdfs[key]) return cdfs[key];
    var deg = m * n;
    var c = new Array(deg + 1).fill(0n);
    c[0] = 1n;
    for (var i = 1; i <= m; i++) {
      var step = n + i;
      for (var j = deg; j >= step; j--) c[j] -= c[j - step];
      for (j = i; j <= deg; j++) c[j] += c[j - i];
    }
    var total = comb(m + n, m);
    var cum = 0n;
    var out = [];
    for (j = 0; j <= deg; j++) {
      cum += c[j];
      out.push(ratio(cum, total));
    }
    cdfs[key] = out;
    return out;
  }

  function exactP(u, m, n) {
    return Math.min(1.0, 2.0 * uCdf(m, n)[Math.trunc(Math.min(u, m * n - u))]);
  }

  function smallestP(m, n) {
    if (m === 0 || n === 0) return 1.0;
    return Math.min(1.0, 2.0 / Number(comb(m + n, m)));
  }

  /* erfc(x) for x >= 0, within a few units in the last place of Python's math.erfc: a
   * power series of erf below 0.5, Laplace's continued fraction (1000 terms) above. */
  function erfc(x) {
    if (x < 0.5) {
      var term = x;
      var sum = x;
      for (var k = 1; k < 200; k++) {
        term *= (2 * x * x) / (2 * k + 1);
        sum += term;
        if (term < sum * 1e-17) break;
      }
      return 1 - ((2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum);
    }
    var f = x;
    for (var i = 1000; i >= 1; i--) f = x + i / 2 / f;
    return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
  }

  /* Wichura's AS241, as Python's statistics.NormalDist().inv_cdf. */
  function invCdf(p) {
    var q = p - 0.5;
    var r, num, den, x;
    if (Math.abs(q) <= 0.425) {
      r = 0.180625 - q * q;
      num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r +
        6.7265770927008700853e+4) * r + 4.5921953931549871457e+4) * r +
        1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r +
        1.3314166789178437745e+2) * r + 3.3871328727963666080e+0) * q;
      den = (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r +
        3.9307895800092710610e+4) * r + 2.1213794301586595867e+4) * r +
        5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r +
        4.2313330701600911252e+1) * r + 1.0);
      return num / den;
    }
    r = q <= 0.0 ? p : 1.0 - p;
    r = Math.sqrt(-Math.log(r));
    if (r <= 5.0) {
      r = r - 1.6;
      num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r +
        2.41780725177450611770e-1) * r + 1.27045825245236838258e+0) * r +
        3.64784832476320460504e+0) * r + 5.76949722146069140550e+0) * r +
        4.63033784615654529590e+0) * r + 1.42343711074968357734e+0);
      den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r +
        1.51986665636164571966e-2) * r + 1.48103976427480074590e-1) * r +
        6.89767334985100004550e-1) * r + 1.67638483018380384940e+0) * r +
        2.05319162663775882187e+0) * r + 1.0);
    } else {
      r = r - 5.0;
      num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r +
        1.24266094738807843860e-3) * r + 2.65321895265761230930e-2) * r +
        2.96560571828504891230e-1) * r + 1.78482653991729133580e+0) * r +
        5.46378491116411436990e+0) * r + 6.65790464350110377720e+0);
      den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r +
        1.84631831751005468180e-5) * r + 7.86869131145613259100e-4) * r +
        1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r +
        5.99832206555887937690e-1) * r + 1.0);
    }
    x = num / den;
    return q < 0.0 ? -x : x;
  }

  /* Mid-ranks (1-based) and the sizes of tie groups. */
  function ranksOf(values) {
    var order = values.map(function (_, i) { return i; });
    order.sort(function (a, b) { return values[a] - values[b]; });
    var ranks = new Array(values.length).fill(0);
    var ties = [];
    var i = 0;
    while (i < order.length) {
      var j = i;
      while (j + 1 < order.length && values[order[j + 1]] === values[order[i]]) j += 1;
      for (var k = i; k <= j; k++) ranks[order[k]] = (i + j) / 2 + 1;
      if (j > i) ties.push(j - i + 1);
      i = j + 1;
    }
    return { ranks: ranks, ties: ties };
  }

  function sum(values) {
    var s = 0;
    for (var i = 0; i < values.length; i++) s += values[i];
    return s;
  }

  function mannWhitney(x, y, exactMax) {
    var m = x.length;
    var n = y.length;
    if (!m || !n) return { u: NaN, p: 1.0 };
    var rt = ranksOf(x.concat(y));
    var u = sum(rt.ranks.slice(m)) - (n * (n + 1)) / 2;
    var mn = m * n;
    if (!rt.ties.length && Math.max(m, n) <= exactMax) return { u: u, p: exactP(u, m, n) };
    var total = m + n;
    var tieTerm = sum(rt.ties.map(function (t) { return t * t * t - t; })) / (total * (total - 1));
    var variance = (mn / 12.0) * (total + 1 - tieTerm);
    if (variance <= 0) return { u: u, p: 1.0 };
    var z = (Math.abs(u - mn / 2.0) - 0.5) / Math.sqrt(variance);
    return { u: u, p: Math.min(1.0, erfc(Math.max(z, 0.0) / Math.sqrt(2.0))) };
  }

  function ciRank(m, n, alpha, exactMax) {
    var mn = m * n;
    if (Math.max(m, n) <= exactMax) {
      var k = 0;
      var cdf = uCdf(m, n);
      for (var u = 0; u < cdf.length; u++) {
        if (cdf[u] > alpha / 2) break;
        k = u + 1;
      }
      return k;
    }
    var z = invCdf(1 - alpha / 2);
    return Math.max(0, Math.floor(mn / 2 - z * Math.sqrt((mn * (m + n + 1)) / 12)));
  }

  function bisectRight(sorted, value) {
    var lo = 0;
    var hi = sorted.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (value < sorted[mid]) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  function hodgesLehmann(x, y, lx, ly, alpha, exactMax) {
    var diffs = [];
    for (var j = 0; j < ly.length; j++) for (var i = 0; i < lx.length; i++) diffs.push(ly[j] - lx[i]);
    diffs.sort(numeric);
    var mid = diffs.length >> 1;
    var med = diffs.length % 2 ? diffs[mid] : (diffs[mid - 1] + diffs[mid]) / 2;
    var m = x.length;
    var n = y.length;
    var k = ciRank(m, n, alpha, exactMax);
    var low = k ? Math.exp(diffs[k - 1]) : null;
    var high = k ? Math.exp(diffs[diffs.length - k]) : null;
    var p;
    if (Math.max(m, n) <= exactMax && new Set(x.concat(y)).size === m + n) {
      p = exactP(diffs.length - bisectRight(diffs, 0.0), m, n);
    } else {
      p = mannWhitney(x, y, exactMax).p;
    }
    return { ratio: Math.exp(med), low: low, high: high, p: p, level: 1.0 - alpha };
  }

  // ------------------------------------------------------------ verdicts

  var REGRESSION = "regression";
  var WIN = "win";
  var SMALL = "below threshold";
  var NOISE = "within noise";
  var TOO_FEW = "too few calls";
  var UNLIKE = "not like-for-like";
  var NO_DATA = "no data";
  var MIXED = "mixed";

  function fmtPct(fraction) {
    return fraction === null ? "–" : fixed(fraction * 100, 1, true) + "%";
  }

  function fmtP(p) {
    if (p === null || p === undefined) return "–";
    return p < 0.001 ? "p < 0.001" : "p = " + general(p, 2);
  }

  function fmtCi(shift) {
    if (!shift) return "–";
    function end(v, sign) {
      return v === null ? sign + "∞" : fmtPct(v - 1.0);
    }
    return fixed(shift.level * 100, 0) + "% CI " + end(shift.low, "−") + " to " + end(shift.high, "+");
  }

  function nText(base, now) {
    return "n = " + (base ? base.n : 0) + " vs " + (now ? now.n : 0);
  }

  function limits(settings, metric, n) {
    var reg = settings[metric.threshold];
    if (n >= settings.tighten_at) {
      return [Math.min(reg, settings.tightened), Math.min(settings.win, settings.tightened)];
    }
    return [reg, settings.win];
  }

  /* A sample as samples.json holds it, with what is computed once. */
  function Sample(raw) {
    this.calls = raw.calls;
    this.errors = raw.errors;
    this.raw = raw;
    this.memo = {};
  }
  Sample.prototype.values = function (key) {
    return this.raw[key] || [];
  };
  Sample.prototype.positive = function (key) {
    if (!this.memo["+" + key]) {
      this.memo["+" + key] = this.values(key).filter(function (v) { return v > 0 && isFinite(v); });
    }
    return this.memo["+" + key];
  };
  Sample.prototype.logs = function (key) {
    if (!this.memo["l" + key]) this.memo["l" + key] = this.positive(key).map(Math.log);
    return this.memo["l" + key];
  };
  Sample.prototype.successRate = function () {
    return this.calls ? (this.calls - this.errors) / this.calls : null;
  };

  function change(mv) {
    return mv.shift ? roundTo(mv.shift.ratio - 1.0, 6) : null;
  }

  function worse(mv) {
    var c = change(mv);
    if (c === null) return null;
    return mv.metric.lower_is_better ? c : -c;
  }

  function rulesOut(metric, shift, lim) {
    if (shift.low === null || shift.high === null) return false;
    if (metric.lower_is_better) return 1.0 - lim[1] < shift.low && shift.high < 1.0 + lim[0];
    return 1.0 - lim[0] < shift.low && shift.high < 1.0 + lim[1];
  }

  /* verdicts.ttft_fallback: a side with no ttft_ms at all puts both sides on the first
     event (never one definition against the other), and the reasons say so. */
  function ttftFallback(base, now) {
    var missing = [["baseline", base], ["this run", now]]
      .filter(function (p) { return !p[1].values("ttft").length; })
      .map(function (p) { return p[0]; });
    var both = [base, now].every(function (s) { return s.values("first_event").length > 0; });
    if (!missing.length || !both) return null;
    return "TTFT read as first event: no ttft_ms recorded for " + missing.join(" or ");
  }

  function metricVerdict(metric, base, now, settings) {
    var fallback = metric.key === "ttft" ? ttftFallback(base, now) : null;
    var v = measuredVerdict(metric, fallback ? "first_event" : metric.key, base, now, settings);
    if (fallback) {
      v.reason = v.reason + "; " + fallback;
      v.note = fallback;
    }
    return v;
  }

  function measuredVerdict(metric, key, base, now, settings) {
    function mv(status, reason, sx, sy, shift) {
      return { metric: metric, status: status, reason: reason, base: sx, now: sy, shift: shift };
    }
    if (key === "decode") {
      var both = [base, now].every(function (s) {
        return s.values("decode_tps").length === s.calls - s.errors;
      });
      key = both ? "decode_tps" : "tokens_per_sec";
    }
    var x = base.positive(key);
    var y = now.positive(key);
    var sx = spreadOf(x);
    var sy = spreadOf(y);
    if (sx === null || sy === null) return mv(NO_DATA, "not measured by both runs", sx, sy, null);
    if (metric.key === "total") {
      var lb = spreadOf(base.values("completion_tokens"));
      var ln = spreadOf(now.values("completion_tokens"));
      if (lb === null || ln === null ||
          Math.abs(ln.p50 - lb.p50) > settings.length_tolerance * Math.max(lb.p50, 1.0)) {
        var told = lb === null || ln === null ? "not recorded" : general(lb.p50) + " vs " + general(ln.p50);
        return mv(UNLIKE, "not like-for-like: output length (median tokens " + told + ")", sx, sy, null);
      }
    }
    var shift = hodgesLehmann(x, y, base.logs(key), now.logs(key), settings.alpha, settings.exact_max_n);
    var nt = nText(sx, sy);
    var fewest = Math.min(x.length, y.length);
    if (fewest < settings.min_calls || smallestP(x.length, y.length) > settings.alpha) {
      return mv(TOO_FEW, "too few calls to tell (" + nt + ")", sx, sy, shift);
    }
    var draft = mv(NOISE, "", sx, sy, shift);
    var w = worse(draft) || 0.0;
    var evidence = fmtCi(shift) + ", " + fmtP(shift.p) + ", " + nt;
    var lim = limits(settings, metric, fewest);
    if (shift.p > settings.alpha) {
      if (rulesOut(metric, shift, lim)) return mv(NOISE, "within noise (" + fmtP(shift.p) + ")", sx, sy, shift);
      return mv(TOO_FEW, "too few calls to tell (" + nt + "): the " + fmtCi(shift) +
        " still admits a change past the threshold (" + fmtP(shift.p) + ")", sx, sy, shift);
    }
    if (w >= lim[0]) return mv(REGRESSION, "regression (" + evidence + ")", sx, sy, shift);
    if (-w >= lim[1]) return mv(WIN, "win (" + evidence + ")", sx, sy, shift);
    var direction = w > 0 ? "worse" : "better";
    var limit = w > 0 ? lim[0] : lim[1];
    return mv(SMALL, "real but small: " + direction + " by less than the " + fixed(limit * 100, 0) +
      "% threshold (" + fmtP(shift.p) + ")", sx, sy, shift);
  }

  function significant(mv) {
    return mv.status === REGRESSION || mv.status === WIN || mv.status === SMALL;
  }

  function combine(metrics, successFlag, differences, successNow) {
    if (differences.length) return [UNLIKE, "not like-for-like: " + differences.join("; ")];
    var worseOnes = metrics.filter(function (m) { return significant(m) && (worse(m) || 0) > 0; });
    var better = metrics.filter(function (m) { return significant(m) && (worse(m) || 0) < 0; });
    var flaggedBad = worseOnes.filter(function (m) { return m.status === REGRESSION; });
    var flaggedGood = better.filter(function (m) { return m.status === WIN; });
    function said(ms, how) {
      return ms.map(function (m) { return m.metric.label + " " + fmtPct(change(m)) + (how ? " " + how : ""); });
    }
    var red = successFlag ? ["warm success rate " + fixed(successNow * 100, 0) + "% (red flag)"] : [];
    if (((flaggedBad.length || red.length) && better.length) ||
        (flaggedGood.length && (worseOnes.length || red.length))) {
      return [MIXED, "mixed: " + red.concat(said(worseOnes, "worse"), said(better, "better")).join(", ")];
    }
    if (flaggedBad.length || red.length) return [REGRESSION, "regression: " + red.concat(said(flaggedBad, "")).join(", ")];
    if (flaggedGood.length) return [WIN, "win: " + said(flaggedGood, "").join(", ")];
    if (worseOnes.length || better.length) {
      return [SMALL, "real but below the thresholds: " + said(worseOnes, "worse").concat(said(better, "better")).join(", ")];
    }
    var few = metrics.filter(function (m) { return m.status === TOO_FEW; });
    if (few.length) return [TOO_FEW, few[0].reason];
    var tested = metrics.filter(function (m) { return m.status === NOISE && m.shift; })
      .map(function (m) { return m.shift.p; });
    if (tested.length) return [NOISE, "within noise (smallest " + fmtP(Math.min.apply(null, tested)) + ")"];
    return [NO_DATA, "nothing both runs measured alike"];
  }

  function describe(name, base, now) {
    if (base === null && now === null) return name + " not recorded";
    if (base === null) return name + " not recorded for the baseline";
    if (now === null) return name + " not recorded for this run";
    if (base !== now) return name + " differs (" + base + " vs " + now + ")";
    return null;
  }

  function known(value) {
    return value === undefined ? null : value;
  }

  /* Why a row is not like-for-like (compare.differences), for run `now`'s cell against
   * `base`'s cell `baseCell`. */
  function differences(now, base, cell, prompt, baseCell) {
    var out = [];
    var tNow = now.targets[cell] || {};
    var tBase = base.targets[baseCell] || {};
    [["model_digest", "model digest"], ["engine_version", "engine version"]].forEach(function (g) {
      var why = describe(g[1], known(tBase[g[0]]), known(tNow[g[0]]));
      if (why) out.push(why);
    });
    var why = describe("prompt sha256", known(base.prompts[prompt]), known(now.prompts[prompt]));
    if (why) out.push(why);
    why = describe("concurrency", base.concurrency, now.concurrency);
    if (why) out.push(why);
    return out;
  }

  function sampleOf(doc, cell, prompt) {
    var cells = doc.warm[cell];
    var raw = cells ? cells[prompt] : undefined;
    if (!raw) return null;
    doc.cache = doc.cache || {};
    var k = cell + "\u0000" + prompt;
    if (!doc.cache[k]) doc.cache[k] = new Sample(raw);
    return doc.cache[k];
  }

  function rowVerdict(label, prompt, base, now, diffs, settings, metrics) {
    var ms = metrics.map(function (m) { return metricVerdict(m, base, now, settings); });
    var successNow = now.successRate();
    var successFlag = successNow !== null && successNow < settings.min_success_rate;
    var v = combine(ms, successFlag, diffs, successNow);
    var notes = ms.filter(function (m) { return m.note; }).map(function (m) { return m.note; });
    if (notes.length) v[1] = [v[1]].concat(notes).join("; ");
    return {
      cell: label, prompt: prompt, metrics: ms, successBase: base.successRate(),
      successNow: successNow, successFlag: successFlag, comparable: !diffs.length,
      differences: diffs, verdict: v[0], reason: v[1]
    };
  }

  function cellsOf(doc) {
    return Object.keys(doc.warm).sort(codeOrder);
  }

  function codeOrder(a, b) {
    // Python sorts strings by code point; so does this (not by locale).
    var i = 0;
    while (i < a.length && i < b.length) {
      var ca = a.codePointAt(i);
      var cb = b.codePointAt(i);
      if (ca !== cb) return ca - cb;
      i += ca > 0xffff ? 2 : 1;
    }
    return a.length - b.length;
  }

  function pairOrder(a, b) {
    return codeOrder(a[0], b[0]) || codeOrder(a[1], b[1]);
  }

  /* compare.compare_cells: B (now) against A (base); cellA/cellB null for every cell. */
  function compare(base, now, settings, metrics, cellA, cellB) {
    var out = { rows: [], withoutBaseline: [], oneSided: [] };
    if (!cellA && !cellB) {
      var keys = [];
      cellsOf(now).forEach(function (c) {
        Object.keys(now.warm[c]).forEach(function (p) { keys.push([c, p]); });
      });
      keys.sort(pairOrder).forEach(function (k) {
        var ns = sampleOf(now, k[0], k[1]);
        var bs = sampleOf(base, k[0], k[1]);
        if (ns && bs) {
          out.rows.push(rowVerdict(k[0], k[1], bs, ns, differences(now, base, k[0], k[1], k[0]), settings, metrics));
        }
      });
      out.withoutBaseline = cellsOf(now).filter(function (c) { return !base.warm[c]; });
      return out;
    }
    cellA = cellA || cellB;
    cellB = cellB || cellA;
    var nowPrompts = Object.keys(now.warm[cellB] || {});
    var basePrompts = Object.keys(base.warm[cellA] || {});
    var label = cellA === cellB ? cellB : cellA + " → " + cellB;
    nowPrompts.filter(function (p) { return basePrompts.indexOf(p) >= 0; }).sort(codeOrder).forEach(function (p) {
      out.rows.push(rowVerdict(label, p, sampleOf(base, cellA, p), sampleOf(now, cellB, p),
        differences(now, base, cellB, p, cellA), settings, metrics));
    });
    out.oneSided = nowPrompts.filter(function (p) { return basePrompts.indexOf(p) < 0; })
      .concat(basePrompts.filter(function (p) { return nowPrompts.indexOf(p) < 0; })).sort(codeOrder);
    return out;
  }

  var api = {
    fixed: fixed, general: general, roundTo: roundTo, erfc: erfc, invCdf: invCdf,
    mannWhitney: mannWhitney, hodgesLehmann: hodgesLehmann, uCdf: uCdf, compare: compare,
    fmtPct: fmtPct, fmtP: fmtP, fmtCi: fmtCi, change: change
  };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  if (typeof document === "undefined") return;

  // ------------------------------------------------------------ the page

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function $(id) {
    return document.getElementById(id);
  }

  function value(v) {
    return v === null || v === undefined ? "–" : fixed(v, 1, false, true);
  }

  function spreadNodes(s, cls) {
    if (!s) return [el("span", { "class": "na " + cls }, ["–"])];
    return [el("span", { "class": cls }, [value(s.p50)]), " ",
      el("small", { "class": "iqr", title: "interquartile range, p25–p75" }, ["[" + value(s.p25) + "–" + value(s.p75) + "]"])];
  }

  function metricCell(m) {
    var attrs = { "class": "num", "data-metric": m.metric.key, "data-status": m.status };
    if (m.shift) {
      attrs["data-ratio"] = String(m.shift.ratio);
      attrs["data-low"] = String(m.shift.low);
      attrs["data-high"] = String(m.shift.high);
      attrs["data-p"] = String(m.shift.p);
    }
    var parts = spreadNodes(m.base, "base").concat([" → "], spreadNodes(m.now, "now"));
    if (m.shift) {
      parts.push(el("br"), el("strong", { "class": "pct" }, [fmtPct(change(m))]), " ",
        el("small", { "class": "ci" }, [fmtCi(m.shift)]), el("br"),
        el("small", {}, [el("span", { "class": "p" }, [fmtP(m.shift.p)]), ", ",
          el("span", { "class": "n" }, [nText(m.base, m.now)])]));
    }
    parts.push(el("br"), el("span", { "class": "flag" }, [m.status]));
    if (m.status === UNLIKE || m.status === NO_DATA) parts.push(" ", el("small", { "class": "why" }, [m.reason]));
    return el("td", attrs, [el("span", { "class": "change " + m.status.replace(/ /g, "-") }, parts)]);
  }

  /* A cell id with a line-break opportunity after each colon (its text unchanged). */
  function breakable(text) {
    var out = [];
    text.split(":").forEach(function (part, i, parts) {
      out.push(part + (i < parts.length - 1 ? ":" : ""));
      if (i < parts.length - 1) out.push(el("wbr"));
    });
    return out;
  }

  function pct0(v) {
    return v === null ? "–" : fixed(v * 100, 0) + "%";
  }

  function row(r) {
    var ns = r.metrics.filter(function (m) { return m.base && m.now; });
    var success = pct0(r.successBase) + " → " + pct0(r.successNow);
    var flagged = r.successFlag && r.comparable;
    return el("tr", { "class": r.verdict.replace(/ /g, "-") }, [
      el("td", { "class": "cell" }, [el("code", {}, breakable(r.cell))]),
      el("td", { "class": "prompt" }, [r.prompt]),
      el("td", { "class": "n" }, [ns.length ? ns[0].base.n + " vs " + ns[0].now.n : "–"])
    ].concat(r.metrics.map(metricCell), [
      el("td", { "class": "num success" }, [el("span", { "class": "change" + (flagged ? " regression" : "") },
        [success].concat(flagged ? [" ", el("span", { "class": "flag" }, ["red flag"])] : []))]),
      el("td", { "class": "verdict-cell" }, [el("span", { "class": "verdict " + r.verdict.replace(/ /g, "-") }, [r.verdict]),
        el("br"), el("small", { "class": "reason" }, [r.reason])])
    ]));
  }

  function command(sel) {
    var words = ["sitegen", "compare", sel.a || "RUN_A", sel.b || "RUN_B"];
    if (sel.ca) words.push("--cell-a", sel.ca);
    if (sel.cb) words.push("--cell-b", sel.cb);
    return words.map(function (w) { return /^[A-Za-z0-9._:\/=-]+$/.test(w) ? w : "'" + w.replace(/'/g, "'\\''") + "'"; }).join(" ");
  }

  function readSelection() {
    var q = new URLSearchParams(global.location.search);
    return { a: q.get("a") || "", b: q.get("b") || "", ca: q.get("ca") || "", cb: q.get("cb") || "" };
  }

  function fetchJson(url) {
    return fetch(url).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }

  function fillCells(select, run, first) {
    var keep = select.value;
    select.textContent = "";
    select.appendChild(el("option", { value: "" }, [first]));
    (run ? run.cells : []).forEach(function (c) { select.appendChild(el("option", { value: c.id }, [c.id])); });
    select.value = keep;
    if (select.value !== keep) select.value = "";
  }

  function start() {
    var form = $("compare-form");
    if (!form) return;
    var fallback = $("compare-cli");
    var status = $("compare-status");
    var sel = readSelection();
    $("compare-command").textContent = command(sel);
    fetchJson("index.json").then(function (index) {
      var byId = {};
      index.runs.forEach(function (r) { byId[r.id] = r; });
      ["compare-a", "compare-b"].forEach(function (id) {
        var select = $(id);
        select.appendChild(el("option", { value: "" }, ["choose a run"]));
        index.runs.forEach(function (r) {
          var flags = [r.baseline ? "baseline" : "", r.synthetic ? "synthetic" : "", r.retracted ? "retracted" : ""]
            .filter(Boolean);
          select.appendChild(el("option", { value: r.id }, [r.title + " (" + r.id + ")" + (flags.length ? " · " + flags.join(", ") : "")]));
        });
      });
      function syncCells() {
        fillCells($("compare-ca"), byId[$("compare-a").value], "every cell both runs measured");
        fillCells($("compare-cb"), byId[$("compare-b").value], "the same cell as A");
      }
      function show(s) {
        $("compare-a").value = byId[s.a] ? s.a : "";
        $("compare-b").value = byId[s.b] ? s.b : "";
        syncCells();
        $("compare-ca").value = s.ca;
        $("compare-cb").value = s.cb;
        render(index, byId, s);
      }
      $("compare-a").addEventListener("change", syncCells);
      $("compare-b").addEventListener("change", syncCells);
      $("compare-swap").addEventListener("click", function () {
        var a = $("compare-a").value;
        var ca = $("compare-ca").value;
        $("compare-a").value = $("compare-b").value;
        $("compare-b").value = a;
        var cb = $("compare-cb").value;
        syncCells();
        $("compare-ca").value = cb;
        $("compare-cb").value = ca;
      });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var s = { a: $("compare-a").value, b: $("compare-b").value, ca: $("compare-ca").value, cb: $("compare-cb").value };
        var q = new URLSearchParams();
        ["a", "b", "ca", "cb"].forEach(function (k) { if (s[k]) q.set(k, s[k]); });
        global.history.pushState(null, "", "?" + q.toString());
        render(index, byId, s);
      });
      global.addEventListener("popstate", function () { show(readSelection()); });
      form.hidden = false;
      fallback.hidden = true;
      show(sel);
    }).catch(function (err) {
      status.textContent = "The comparison data could not be loaded (" + err.message +
        "). Browsers do not fetch files of a site opened from disk: serve it (sitegen serve), or run the command below.";
      fallback.hidden = false;
    });
  }

  function render(index, byId, sel) {
    var status = $("compare-status");
    var result = $("compare-result");
    $("compare-command").textContent = command(sel);
    $("compare-command-result").textContent = command(sel);
    result.hidden = true;
    if (!sel.a || !sel.b) {
      status.textContent = "Choose run A (the baseline) and run B.";
      return;
    }
    var missing = [sel.a, sel.b].filter(function (id) { return !byId[id]; });
    if (missing.length) {
      status.textContent = "No run with warm calls has the id " + missing.join(", ") + " in this archive.";
      return;
    }
    status.textContent = "Computing…";
    Promise.all([fetchJson("../" + byId[sel.a].samples), fetchJson("../" + byId[sel.b].samples)]).then(function (docs) {
      var base = docs[0];
      var now = docs[1];
      var s = index.settings;
      var ca = sel.ca || null;
      var cb = sel.cb || null;
      var bad = [];
      if ((ca || cb) && !base.warm[ca || cb]) bad.push("run " + sel.a + " has no warm calls of cell " + (ca || cb));
      if ((ca || cb) && !now.warm[cb || ca]) bad.push("run " + sel.b + " has no warm calls of cell " + (cb || ca));
      if (bad.length) {
        status.textContent = bad.join("; ") + ".";
        return;
      }
      var c = compare(base, now, s, index.metrics, ca, cb);
      var title = ca || cb ? sel.b + " cell " + (cb || ca) + " against " + sel.a + " cell " + (ca || cb)
        : sel.b + " against " + sel.a;
      $("compare-title").textContent = title;
      $("compare-runs").textContent = "A: " + byId[sel.a].title + " · B: " + byId[sel.b].title;
      var body = $("compare-rows");
      body.textContent = "";
      c.rows.forEach(function (r) { body.appendChild(row(r)); });
      var method = $("compare-method");
      var summary = $("compare-summary");
      if (!c.rows.length) {
        method.textContent = "no cell x prompt was measured by both runs";
        summary.textContent = "";
        $("compare-table").hidden = true;
      } else {
        $("compare-table").hidden = false;
        method.textContent = "flagged only when significant (two-sided Mann-Whitney, alpha = " + general(s.alpha) +
          ", at least " + s.min_calls + " calls a side) and past the threshold; changes are Hodges-Lehmann ratios with " +
          fixed((1.0 - s.alpha) * 100, 0) + "% CIs";
        var count = function (v) { return c.rows.filter(function (r) { return r.verdict === v; }).length; };
        var text = count(REGRESSION) + " regression(s), " + count(WIN) + " win(s), " + count(MIXED) + " mixed, " +
          c.rows.filter(function (r) { return !r.comparable; }).length + " not like-for-like";
        if (c.withoutBaseline.length) text += "; not in " + sel.a + ": " + c.withoutBaseline.join(", ");
        if (c.oneSided.length) text += "; measured by one side only: " + c.oneSided.join(", ");
        summary.textContent = text;
      }
      status.textContent = "";
      result.hidden = false;
    }).catch(function (err) {
      status.textContent = "The runs' samples could not be loaded (" + err.message + ").";
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})(typeof window !== "undefined" ? window : globalThis);
