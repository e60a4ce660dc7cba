using System.Diagnostics;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Policies;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.MockEngine.Performance;

namespace HybridServing.ClusterSimulator.Cluster;

/// <summary>
/// Drives one trace through one policy in virtual time. Events: arrivals, gateway scrapes, the
/// policy's periodic actions (demand reports, control-plane resyncs), object-store downloads
/// finishing, the scenario's event. Engines run their steps in between (the fleet advances every
/// engine exactly to each event; completions fire from inside the engine model at their exact step end).
/// </summary>
internal static class ClusterRun
{
    /// <summary>Unfinished requests this long after the last arrival count as SLO failures.</summary>
    private const double DrainLimitSeconds = 60;
    private const double CheckInterval = 1;

    public static RunResult Execute(SimulationOptions o, AdapterCatalog catalog, WorkloadTrace trace, string policyName, bool stopWhenSloLost)
    {
        var wall = Stopwatch.StartNew();
        var policy = ServingPolicy.Create(policyName, o);
        // Initial placement happens an hour before traffic: its loads are over before the first request.
        var cluster = new SimulatedCluster(o, catalog, policy, startSeconds: -3600);
        // A long-running cluster's steady state: every node's artifact cache holds every adapter, so
        // loads on the request path read local disk; the object store is paid only by adapters new
        // to a node (none in these scenarios unless a policy starts from an empty cache).
        foreach (var e in cluster.AllEngines)
            for (var a = 0; a < catalog.Count; a++) cluster.Stage(e, a);
        policy.Initialize(cluster);
        cluster.AdvanceTo(0);

        var arrivals = trace.Arrivals;
        var measuredTotal = arrivals.Count(a => a.Time >= o.MeasuredStart);
        var failAt = Math.Max(1, Percentiles.ViolationsToFail(measuredTotal, 0.99));
        var outstandingCap = o.Engines * o.MaxNumSeqs * 3;
        int ttftViolations = 0, tpotViolations = 0;
        var measured = new List<SimRequest>(measuredTotal);
        var aborted = false;

        cluster.RequestFinished += r =>
        {
            if (!r.Measured) return;
            if (r.Ttft > o.SloTtft) ttftViolations++;
            if (r.Tpot > o.SloTpot) tpotViolations++;
        };
        double? flashOnTwo = null;
        if (trace.FlashAdapter is { } flash)
        {
            cluster.AdapterRegistered += (_, a) =>
            {
                if (a != flash || flashOnTwo is not null || cluster.Now < trace.EventTime) return;
                if (cluster.Alive.Count(e => e.Registered.Contains(flash)) >= 2) flashOnTwo = cluster.Now - trace.EventTime!.Value;
            };
        }

        Dictionary<LoadTier, long>? loadsAtStart = null, loadsAtEnd = null;
        double now = 0, nextScrape = 0, nextCheck = CheckInterval;
        var periodic = policy.Periodic;
        var nextPeriodic = periodic.Select(p => p.Interval).ToArray();
        var eventPending = trace.EventTime is not null;
        var ai = 0;
        while (true)
        {
            var arrivalsLeft = ai < arrivals.Count;
            if (!arrivalsLeft && loadsAtEnd is not null && (cluster.Outstanding.Count == 0 || now >= o.Duration + DrainLimitSeconds)) break;
            var next = Math.Min(nextScrape, nextCheck);
            foreach (var due in nextPeriodic) next = Math.Min(next, due);
            if (arrivalsLeft) next = Math.Min(next, arrivals[ai].Time);
            if (cluster.NextFetchCompletion is { } f) next = Math.Min(next, f);
            if (eventPending) next = Math.Min(next, trace.EventTime!.Value);
            if (loadsAtStart is null) next = Math.Min(next, o.MeasuredStart);
            if (loadsAtEnd is null) next = Math.Min(next, o.Duration);
            now = Math.Max(now, next);
            cluster.AdvanceTo(now);

            cluster.CompleteDueFetches();
            if (eventPending && now >= trace.EventTime)
            {
                eventPending = false;
                if (trace.Scenario == ScenarioNames.EngineLost && cluster.Alive.Count > 1)
                    cluster.LoseEngine(cluster.Alive.MaxBy(e => e.InFlight)!);
                if (trace.FlashAdapter is { } fa && flashOnTwo is null && cluster.Alive.Count(e => e.Registered.Contains(fa)) >= 2) flashOnTwo = 0;
            }
            if (loadsAtStart is null && now >= o.MeasuredStart) loadsAtStart = Loads(cluster);
            if (loadsAtEnd is null && now >= o.Duration) loadsAtEnd = Loads(cluster);
            if (now >= nextScrape)
            {
                foreach (var e in cluster.Alive) e.Scrape();
                nextScrape += o.ScrapeInterval;
            }
            for (var i = 0; i < periodic.Count; i++)
                if (now >= nextPeriodic[i])
                {
                    periodic[i].Run(cluster);
                    nextPeriodic[i] += periodic[i].Interval;
                }
            if (now >= nextCheck)
            {
                nextCheck += CheckInterval;
                if (cluster.Outstanding.Count > outstandingCap) { aborted = true; break; }
                if (stopWhenSloLost)
                {
                    // Requests still without a first token past the objective will violate it for sure.
                    var stuck = cluster.Outstanding.Count(r => r.Measured && r.Current?.FirstTokenTime is null && now - r.Arrival > o.SloTtft);
                    if (ttftViolations + stuck >= failAt || tpotViolations >= failAt) { aborted = true; break; }
                }
            }
            while (ai < arrivals.Count && arrivals[ai].Time <= now)
            {
                var a = arrivals[ai++];
                var request = new SimRequest(a.Id, a.Time, a.Adapter, a.PromptTokens, a.OutputTokens, a.Time >= o.MeasuredStart);
                if (request.Measured) measured.Add(request);
                policy.Observe(request, cluster);
                cluster.Admit(request);
            }
        }

        loadsAtStart ??= Loads(cluster);
        loadsAtEnd ??= Loads(cluster);
        return Summarise(o, catalog, trace, policyName, cluster, measured, measuredTotal, aborted, loadsAtStart, loadsAtEnd, flashOnTwo, wall.Elapsed.TotalSeconds);
    }

    private static Dictionary<LoadTier, long> Loads(SimulatedCluster cluster)
    {
        var totals = new Dictionary<LoadTier, long>();
        foreach (var e in cluster.AllEngines)
            foreach (var (tier, n) in e.Model.Statistics.AdapterLoadsByTier) totals[tier] = totals.GetValueOrDefault(tier) + n;
        return totals;
    }

    private static RunResult Summarise(SimulationOptions o, AdapterCatalog catalog, WorkloadTrace trace, string policy, SimulatedCluster cluster,
        List<SimRequest> measured, int measuredTotal, bool aborted, Dictionary<LoadTier, long> start, Dictionary<LoadTier, long> end,
        double? flashOnTwo, double wall)
    {
        // Requests that never got a first token (not arrived because the run stopped, or stuck) count as +∞.
        var ttft = new List<double>(measuredTotal);
        var tpot = new List<double>(measuredTotal);
        foreach (var r in measured)
        {
            ttft.Add(r.Ttft ?? double.PositiveInfinity);
            if (r.Tpot is { } t) tpot.Add(t);
        }
        for (var i = measured.Count; i < measuredTotal; i++) ttft.Add(double.PositiveInfinity);
        var completed = measured.Count(r => r.Done);
        var p99Ttft = Percentiles.Of(ttft, 0.99);
        var p99Tpot = tpot.Count > 0 ? Percentiles.Of(tpot, 0.99) : 0;
        var window = o.Duration - o.MeasuredStart;
        var per1000 = measuredTotal > 0 ? 1000.0 / measuredTotal : 0;
        var remote = cluster.RemoteFetches.Count(t => t >= o.MeasuredStart && t < o.Duration);
        var loads = new Dictionary<string, double>
        {
            ["host-to-gpu"] = (end.GetValueOrDefault(LoadTier.HostToGpu) - start.GetValueOrDefault(LoadTier.HostToGpu)) * per1000,
            ["local-disk"] = (end.GetValueOrDefault(LoadTier.LocalDisk) - start.GetValueOrDefault(LoadTier.LocalDisk)
                + end.GetValueOrDefault(LoadTier.Remote) - start.GetValueOrDefault(LoadTier.Remote)) * per1000,
            ["object-store"] = remote * per1000,
        };

        double? cold = null, hot = null;
        if (trace.Scenario == ScenarioNames.Steady && !aborted)
        {
            var n = catalog.Count;
            var coldList = measured.Where(r => catalog.Adapters[r.Adapter].PopularityRank >= n / 2).Select(r => r.Ttft ?? double.PositiveInfinity).ToList();
            var hotList = measured.Where(r => catalog.Adapters[r.Adapter].PopularityRank < Math.Max(1, n / 10)).Select(r => r.Ttft ?? double.PositiveInfinity).ToList();
            if (coldList.Count > 0) cold = Percentiles.Of(coldList, 0.99);
            if (hotList.Count > 0) hot = Percentiles.Of(hotList, 0.99);
        }

        double? recovery = null;
        bool? before = null;
        int? failingAfter = null;
        var windows = new List<WindowStat>();
        if (trace.EventTime is { } ev && !aborted)
        {
            // A request lost with an engine and retried is counted at the event, not at its arrival.
            static double At(SimRequest r) => r.RetriedAt ?? r.Arrival;
            for (var ws = o.MeasuredStart; ws < o.Duration - 1e-9; ws += o.RecoveryWindow)
            {
                var we = Math.Min(o.Duration, ws + o.RecoveryWindow);
                var inWindow = measured.Where(r => At(r) >= ws && At(r) < we).ToList();
                if (inWindow.Count == 0) continue;
                var wt = Percentiles.Of(inWindow.Select(r => r.Ttft ?? double.PositiveInfinity).ToList(), 0.99);
                var tp = inWindow.Where(r => r.Tpot is not null).Select(r => r.Tpot!.Value).ToList();
                var wp = tp.Count > 0 ? Percentiles.Of(tp, 0.99) : 0;
                windows.Add(new WindowStat(ws, inWindow.Count, wt, wp, wt <= o.SloTtft && wp <= o.SloTpot));
            }
            before = windows.Where(w => w.Start + o.RecoveryWindow <= ev).All(w => w.MeetsSlo);
            var after = windows.Where(w => w.Start + o.RecoveryWindow > ev).ToList();
            failingAfter = after.Count(w => !w.MeetsSlo);
            // Recovery: the end of the first run of failing windows after the event (0 if none fails).
            // Later isolated failures are reported as a count, not as a longer recovery.
            var firstBad = after.FindIndex(w => !w.MeetsSlo);
            if (firstBad < 0) recovery = 0;
            else
            {
                var good = after.FindIndex(firstBad, w => w.MeetsSlo);
                if (good >= 0) recovery = Math.Max(0, after[good].Start - ev);
            }
        }

        return new RunResult
        {
            Policy = policy,
            Scenario = trace.Scenario,
            Rate = trace.Rate,
            Measured = measuredTotal,
            Completed = completed,
            Aborted = aborted,
            MeetsSlo = !aborted && p99Ttft <= o.SloTtft && p99Tpot <= o.SloTpot,
            TtftP50 = Percentiles.Of(ttft, 0.5, sorted: true),
            TtftP99 = p99Ttft,
            TpotP99 = p99Tpot,
            ThroughputRps = measured.Count(r => r.Done) / window,
            OutputTokensPerSecond = measured.Where(r => r.Done).Sum(r => (double)r.OutputTokens) / window,
            LoadsPer1000 = loads,
            ColdHalfTtftP99 = cold,
            HotTenthTtftP99 = hot,
            RecoverySeconds = recovery,
            FlashOnTwoEnginesSeconds = flashOnTwo,
            SloMetBeforeEvent = before,
            FailingWindowsAfterEvent = failingAfter,
            Windows = windows,
            WallSeconds = wall,
        };
    }
}
