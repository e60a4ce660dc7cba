using System.Diagnostics;
using HybridServing.Autoscaler.Decisions;
using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Policies;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway;
using HybridServing.Gateway.Picking;

namespace HybridServing.ClusterSimulator.Autoscaling;

/// <summary>The gateway's hybrid picker over the awake engines; every adapter is on every node's disk and registered on first use.</summary>
internal sealed class AwakeEnginesRouting(SimulationOptions options) : ServingPolicy
{
    private readonly EndpointPickingPipeline _pipeline =
        PickingPolicies.Create(new PickingOptions { Policy = PickingPolicies.Hybrid, Seed = options.Seed }, SeededRandom(options, "autoscale"));

    public override string Name => "hybrid-on-demand";
    public override string Description => "Gateway hybrid picker over the awake engines, adapters registered from local disk on first use";

    public override void Initialize(SimulatedCluster cluster) { }

    public override SimEngine Route(SimRequest request, SimulatedCluster cluster) =>
        Pick(_pipeline, request, cluster, _ => Residency.Loaded) ?? throw new InvalidOperationException("No engine is awake.");
}

/// <summary>One point of the engines-over-time series.</summary>
internal sealed record PoolSample(double Time, int Engines, double ArrivalRate, double Concurrency);

/// <summary>What one policy did over the day.</summary>
internal sealed record AutoscaleResult
{
    public required string Policy { get; init; }
    public required string Description { get; init; }
    public int Requests { get; init; }
    public int Completed { get; init; }
    /// <summary>Requests the gateway answered 503 after holding them for the whole Gateway:ColdStart:Timeout.</summary>
    public int Rejected { get; init; }
    public int RejectedAtNight { get; init; }
    public int NightRequests { get; init; }
    public int HeldAtNight { get; init; }
    /// <summary>Share of requests with TTFT ≤ the TTFT objective and TPOT ≤ the TPOT objective (rejected and unfinished ones fail).</summary>
    public double SloAttainment { get; init; }
    public double TtftP99 { get; init; }
    public double TpotP99 { get; init; }
    /// <summary>Hours of engines not asleep (awake, waking or draining) over the day, in virtual time.</summary>
    public double EngineHours { get; init; }
    public int MaxEngines { get; init; }
    public int MinEngines { get; init; }
    public int Wakes { get; init; }
    public int Sleeps { get; init; }
    public IReadOnlyDictionary<string, int> DecisionReasons { get; init; } = new Dictionary<string, int>();
    public IReadOnlyList<PoolSample> Series { get; init; } = [];
    public double WallSeconds { get; init; }
}

/// <summary>
/// One day of one scaling policy in virtual time. The pool's engines are the MockEngine's model (the
/// cluster simulator's fleet); a sleeping engine gets no requests; the actuator acts as the Autoscaler's
/// Sleep actuator does: it wakes engines one after the other in list order (each takes the wake time) and
/// drains the last awake engines before they sleep (the gateway stops routing to them at once, what they
/// admitted finishes), and the next decision waits until acting is done. When no engine is awake the
/// gateway holds requests (re-picking at its scrape interval) up to the hold timeout, then answers 503.
/// </summary>
internal static class AutoscaleRun
{
    private enum State { Asleep, Waking, Awake, Draining }

    private const double DrainLimitSeconds = 120;

    public static AutoscaleResult Execute(AutoscaleOptions o, AdapterCatalog catalog, DiurnalTrace trace, string policyName)
    {
        var wall = Stopwatch.StartNew();
        var c = o.Cluster;
        var policy = ScalingPolicy.Create(policyName, o);
        var cluster = new SimulatedCluster(c, catalog, new AwakeEnginesRouting(c), startSeconds: -3600);
        var engines = cluster.AllEngines;
        foreach (var e in engines)
            for (var a = 0; a < catalog.Count; a++) cluster.Stage(e, a);
        var state = new State[engines.Count];
        var since = new double[engines.Count];
        var wakeDone = new double[engines.Count];
        var drainStart = new double[engines.Count];
        double engineSeconds = 0;
        int wakes = 0, sleeps = 0;
        for (var i = 0; i < engines.Count; i++)
        {
            state[i] = i < policy.InitialEngines ? State.Awake : State.Asleep;
            if (state[i] == State.Asleep) cluster.SetAwake(engines[i], false);
        }
        cluster.AdvanceTo(0);

        void Enter(int i, State s, double now)
        {
            if (state[i] != State.Asleep) engineSeconds += Math.Min(now, o.Day) - Math.Min(since[i], o.Day);
            state[i] = s;
            since[i] = now;
        }
        int Count(Func<State, bool> which) => state.Count(which);
        int Serving() => Count(s => s == State.Awake);
        int Provisioned() => Count(s => s != State.Asleep);

        var held = new List<SimRequest>();
        var all = new List<SimRequest>(trace.Arrivals.Count);
        var rejected = new HashSet<SimRequest>();
        var heldEver = new HashSet<SimRequest>();
        var reasons = new Dictionary<string, int>(StringComparer.Ordinal);
        var series = new List<PoolSample>();
        double busyUntil = double.NegativeInfinity;
        var decisionDue = false;
        double nextTick = 0, nextScrape = 0, nextSample = o.SampleEvery;
        int maxEngines = Provisioned(), minEngines = Provisioned();
        var arrivalsInSample = 0;
        var ai = 0;
        double now = 0;
        var arrivals = trace.Arrivals;

        while (true)
        {
            var arrivalsLeft = ai < arrivals.Count;
            if (!arrivalsLeft && now >= o.Day && ((cluster.Outstanding.Count == 0 && held.Count == 0) || now >= o.Day + DrainLimitSeconds)) break;
            var next = Math.Min(nextScrape, nextSample);
            if (nextTick < double.PositiveInfinity) next = Math.Min(next, nextTick);
            if (arrivalsLeft) next = Math.Min(next, arrivals[ai].Time);
            for (var i = 0; i < engines.Count; i++)
                if (state[i] == State.Waking) next = Math.Min(next, wakeDone[i]);
            if (busyUntil > now) next = Math.Min(next, busyUntil);
            if (now < o.Day) next = Math.Min(next, o.Day);
            now = Math.Max(now, next);
            cluster.AdvanceTo(now);

            // Wakes finishing: the engine serves, and the gateway sends it what it held.
            for (var i = 0; i < engines.Count; i++)
                if (state[i] == State.Waking && wakeDone[i] <= now)
                {
                    Enter(i, State.Awake, now);
                    cluster.SetAwake(engines[i], true);
                }
            // Drains: an engine sleeps once what it admitted has finished.
            var draining = false;
            for (var i = 0; i < engines.Count; i++)
            {
                if (state[i] != State.Draining) continue;
                if (engines[i].InFlight == 0) { Enter(i, State.Asleep, now); sleeps++; }
                else if (now - drainStart[i] < o.DrainTimeout) draining = true;
            }
            if (!draining && busyUntil == double.PositiveInfinity) busyUntil = now;

            if (now >= nextScrape)
            {
                foreach (var e in cluster.Alive) e.Scrape();
                nextScrape += c.ScrapeInterval;
                // The gateway re-picks held requests at its scrape interval; past the timeout it answers 503.
                if (held.Count > 0)
                {
                    var keep = new List<SimRequest>();
                    foreach (var r in held)
                    {
                        if (cluster.Alive.Count > 0) cluster.Admit(r);
                        else if (now - r.Arrival >= o.HoldTimeout) rejected.Add(r);
                        else keep.Add(r);
                    }
                    held = keep;
                }
            }

            if (now >= nextTick)
            {
                decisionDue = true;
                nextTick += policy.Interval;
            }
            if (decisionDue && now >= busyUntil)
            {
                decisionDue = false;
                var signals = Observe(cluster, engines, state, held.Count, now);
                var (desired, reason) = policy.Decide(signals, now);
                reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
                var awake = Serving();
                if (desired > awake)
                {
                    // Wake sleeping engines in list order, one after the other.
                    var t = now;
                    foreach (var i in Enumerable.Range(0, engines.Count).Where(i => state[i] == State.Asleep).Take(desired - awake).ToList())
                    {
                        t += o.WakeSeconds;
                        wakeDone[i] = t;
                        Enter(i, State.Waking, now);
                        wakes++;
                    }
                    busyUntil = t;
                }
                else if (desired < awake)
                {
                    // Drain the last awake engines: no new requests from now.
                    foreach (var i in Enumerable.Range(0, engines.Count).Where(i => state[i] == State.Awake).Reverse().Take(awake - desired).ToList())
                    {
                        Enter(i, State.Draining, now);
                        drainStart[i] = now;
                        cluster.SetAwake(engines[i], false);
                    }
                    busyUntil = double.PositiveInfinity;
                }
            }
            maxEngines = Math.Max(maxEngines, Provisioned());
            if (now < o.Day) minEngines = Math.Min(minEngines, Provisioned());

            while (ai < arrivals.Count && arrivals[ai].Time <= now)
            {
                var a = arrivals[ai++];
                var request = new SimRequest(a.Id, a.Time, a.Adapter, a.PromptTokens, a.OutputTokens, measured: true);
                all.Add(request);
                arrivalsInSample++;
                if (cluster.Alive.Count > 0) cluster.Admit(request);
                else
                {
                    held.Add(request);
                    heldEver.Add(request);
                }
            }
            if (now >= nextSample && now <= o.Day)
            {
                var concurrency = cluster.Alive.Sum(e => e.Model.RunningCount + e.Model.WaitingCount) + held.Count;
                series.Add(new PoolSample(nextSample, Provisioned(), arrivalsInSample / o.SampleEvery, concurrency));
                arrivalsInSample = 0;
                nextSample += o.SampleEvery;
            }
            if (now >= o.Day && nextTick < double.PositiveInfinity && !arrivalsLeft) nextTick = double.PositiveInfinity;
            if (now >= o.Day) nextSample = double.PositiveInfinity;
        }
        for (var i = 0; i < engines.Count; i++) Enter(i, state[i], o.Day);

        bool Night(SimRequest r) => r.Arrival < DiurnalWorkload.NightEnds * o.Day || r.Arrival >= DiurnalWorkload.NightStarts * o.Day;
        var ttft = all.Select(r => r.Ttft ?? double.PositiveInfinity).ToList();
        var tpot = all.Where(r => r.Tpot is not null).Select(r => r.Tpot!.Value).ToList();
        var good = all.Count(r => r.Done && r.Ttft <= c.SloTtft && r.Tpot <= c.SloTpot);
        return new AutoscaleResult
        {
            Policy = policy.Name,
            Description = policy.Description,
            Requests = all.Count,
            Completed = all.Count(r => r.Done),
            Rejected = rejected.Count,
            RejectedAtNight = rejected.Count(Night),
            NightRequests = all.Count(Night),
            HeldAtNight = heldEver.Count(Night),
            SloAttainment = all.Count == 0 ? 1 : (double)good / all.Count,
            TtftP99 = ttft.Count == 0 ? 0 : Percentiles.Of(ttft, 0.99),
            TpotP99 = tpot.Count == 0 ? 0 : Percentiles.Of(tpot, 0.99),
            EngineHours = engineSeconds / 3600,
            MaxEngines = maxEngines,
            MinEngines = minEngines,
            Wakes = wakes,
            Sleeps = sleeps,
            DecisionReasons = reasons,
            Series = series,
            WallSeconds = wall.Elapsed.TotalSeconds,
        };
    }

    /// <summary>What the Autoscaler's signal collector reads: the awake engines' vLLM metrics and the gateway's held requests.</summary>
    private static PoolSignals Observe(SimulatedCluster cluster, IReadOnlyList<SimEngine> engines, State[] state, int held, double now)
    {
        var awake = engines.Where((_, i) => state[i] == State.Awake).Select(e => e.Model).ToList();
        return new PoolSignals
        {
            ObservedAt = SimulatedCluster.At(now),
            CurrentEngines = awake.Count,
            Running = awake.Sum(m => m.RunningCount),
            Waiting = awake.Sum(m => m.WaitingCount),
            MaxKvCacheUsage = awake.Count == 0 ? 0 : awake.Max(m => m.KvCacheUsage),
            HeldRequests = held,
            // No placement runs in this scenario (every adapter on every node): no shortfalls, no overflow refusals.
            Lora = new LoraPressure(0, 0, awake.Sum(m => m.Options.MaxLoras), awake.Sum(m => m.RunningAdapters.Count), awake.Sum(m => m.WaitingAdapters.Count)),
        };
    }
}
