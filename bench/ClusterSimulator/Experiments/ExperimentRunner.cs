using System.Collections.Concurrent;
using System.Diagnostics;
using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Workload;

namespace HybridServing.ClusterSimulator.Experiments;

internal sealed record PolicyOutcome(string Policy, string Description, KneeResult Knee);

/// <summary>Knees of every policy for one workload shape (the tuning matrix).</summary>
internal sealed record ShapeOutcome(double Zipf, int Engines, IReadOnlyDictionary<string, double> Knees);

/// <summary>Everything one invocation measured.</summary>
internal sealed record BenchmarkOutcome(
    SimulationOptions Options,
    IReadOnlyList<PolicyOutcome> Policies,
    IReadOnlyList<double> SweepRates,
    IReadOnlyList<RunResult> Sweep,
    double ReferenceRate,
    double OperatingRate,
    double? DynamicRate,
    IReadOnlyList<RunResult> Dynamic,
    IReadOnlyList<ShapeOutcome> Tuning,
    double WallSeconds)
{
    public RunResult? At(string policy, double rate) =>
        Sweep.FirstOrDefault(r => r.Policy == policy && Math.Abs(r.Rate - rate) < 1e-9 && r.Scenario == ScenarioNames.Steady);

    public double Knee(string policy) => Policies.FirstOrDefault(p => p.Policy == policy)?.Knee.Knee ?? double.NaN;
}

/// <summary>
/// Runs the whole benchmark: knee search per policy (steady scenario), the latency sweep on shared
/// rates, the dynamic scenarios, and optionally the tuning matrix. Runs are independent, so they go
/// in parallel; each is deterministic for the seed, so the order they finish in changes nothing.
/// </summary>
internal sealed class ExperimentRunner(SimulationOptions options, TextWriter log)
{
    private readonly Lock _logGate = new();

    public BenchmarkOutcome Run()
    {
        var wall = Stopwatch.StartNew();
        var catalog = new AdapterCatalog(options);
        var policies = Knees(options, catalog, "steady");

        // Shared rates: 0.8 × B0's knee (the §1 comparison point) and 0.8 × ours (the operating point).
        var b0 = policies.FirstOrDefault(p => p.Policy == PolicyNames.B0)?.Knee.Knee;
        var ours = policies.FirstOrDefault(p => p.Policy == PolicyNames.HybridServing)?.Knee.Knee;
        var positive = policies.Select(p => p.Knee.Knee).Where(k => k > 0).DefaultIfEmpty(options.Engines).ToArray();
        var reference = Round(0.8 * (b0 is > 0 ? b0.Value : positive.Min()));
        var operating = Round(0.8 * (ours is > 0 ? ours.Value : positive.Max()));
        var sweepRates = (options.Rates ?? Geometric(0.5 * positive.Min(), 1.2 * positive.Max(), 7))
            .Append(reference).Append(operating).Select(Round).Distinct().Order().ToArray();
        var sweep = Sweep(catalog, sweepRates, [reference, operating]);

        double? dynamicRate = null;
        var dynamic = new List<RunResult>();
        var dynamicScenarios = options.Scenarios.Where(s => s != ScenarioNames.Steady).ToArray();
        if (dynamicScenarios.Length > 0)
        {
            dynamicRate = Round(options.DynamicRate ?? operating);
            var jobs = dynamicScenarios.SelectMany(s => options.Policies.Select(p => (Scenario: s, Policy: p))).ToArray();
            var traces = dynamicScenarios.ToDictionary(s => s, s => WorkloadGenerator.Generate(options, catalog, s, dynamicRate.Value));
            var results = new ConcurrentBag<RunResult>();
            System.Threading.Tasks.Parallel.ForEach(jobs, ParallelRuns(), job =>
            {
                var r = ClusterRun.Execute(options, catalog, traces[job.Scenario], job.Policy, stopWhenSloLost: false);
                Log($"{job.Scenario,-12} {job.Policy,-14} rate {dynamicRate:0.#}: recovery {Show(r.RecoverySeconds)} s, P99 TTFT {r.TtftP99:0.###} s ({r.WallSeconds:0.0} s wall)");
                results.Add(r);
            });
            dynamic = [.. results.OrderBy(r => Array.IndexOf(dynamicScenarios, r.Scenario)).ThenBy(r => options.Policies.ToList().IndexOf(r.Policy))];
        }

        var tuning = new List<ShapeOutcome>();
        var zipfs = options.TuningZipf.Append(options.ZipfExponent).Distinct().Order().ToArray();
        var engineCounts = options.TuningEngines.Append(options.Engines).Distinct().Order().ToArray();
        if (options.TuningZipf.Count > 0 || options.TuningEngines.Count > 0)
        {
            foreach (var m in engineCounts)
                foreach (var z in zipfs)
                {
                    if (z == options.ZipfExponent && m == options.Engines)
                    {
                        tuning.Add(new ShapeOutcome(z, m, policies.ToDictionary(p => p.Policy, p => p.Knee.Knee)));
                        continue;
                    }
                    var shape = options with { ZipfExponent = z, Engines = m };
                    var knees = new ExperimentRunner(shape, log).Knees(shape, new AdapterCatalog(shape), $"tuning zipf {z} engines {m}");
                    tuning.Add(new ShapeOutcome(z, m, knees.ToDictionary(p => p.Policy, p => p.Knee.Knee)));
                }
        }

        return new BenchmarkOutcome(options, policies, sweepRates, sweep, reference, operating, dynamicRate, dynamic, tuning, wall.Elapsed.TotalSeconds);
    }

    private List<PolicyOutcome> Knees(SimulationOptions o, AdapterCatalog catalog, string label)
    {
        var outcomes = new ConcurrentBag<PolicyOutcome>();
        var traces = new ConcurrentDictionary<double, WorkloadTrace>();
        // B∞ (the slowest to search: highest knee) first, so it does not finish last alone.
        var order = o.Policies.OrderBy(p => p == PolicyNames.BInfinity ? 0 : 1).ToArray();
        System.Threading.Tasks.Parallel.ForEach(order, ParallelRuns(), policy =>
        {
            var knee = KneeSearch.Find(rate =>
            {
                var trace = traces.GetOrAdd(Round(rate), r => WorkloadGenerator.Generate(o, catalog, ScenarioNames.Steady, r));
                var result = ClusterRun.Execute(o, catalog, trace, policy, stopWhenSloLost: true);
                Log($"{label,-12} {policy,-14} rate {trace.Rate,8:0.##}: {(result.MeetsSlo ? "meets" : "fails")} (P99 TTFT {Show(result.Aborted ? null : result.TtftP99)} s, {result.WallSeconds:0.0} s wall)");
                return result.MeetsSlo;
            }, start: 2.0 * o.Engines, minRate: 0.05 * o.Engines, maxRate: 200.0 * o.Engines, tolerance: o.KneeTolerance);
            outcomes.Add(new PolicyOutcome(policy, Cluster.PolicyCatalog.Describe(policy), knee));
        });
        return [.. outcomes.OrderBy(p => o.Policies.ToList().IndexOf(p.Policy))];
    }

    private List<RunResult> Sweep(AdapterCatalog catalog, IReadOnlyList<double> rates, IReadOnlyList<double> fullRates)
    {
        var traces = rates.ToDictionary(r => r, r => WorkloadGenerator.Generate(options, catalog, ScenarioNames.Steady, r));
        var results = new ConcurrentBag<RunResult>();
        System.Threading.Tasks.Parallel.ForEach(options.Policies, ParallelRuns(), policy =>
        {
            var failed = false;
            foreach (var rate in rates)
            {
                var full = fullRates.Contains(rate);
                // Above a rate that already lost the SLO only the shared comparison rates are run (fully).
                if (failed && !full) continue;
                var r = ClusterRun.Execute(options, catalog, traces[rate], policy, stopWhenSloLost: !full);
                Log($"sweep        {policy,-14} rate {rate,8:0.##}: P50/P99 TTFT {Show(r.Aborted ? null : r.TtftP50)}/{Show(r.Aborted ? null : r.TtftP99)} s{(r.Aborted ? " (stopped: SLO lost)" : "")} ({r.WallSeconds:0.0} s wall)");
                results.Add(r);
                if (!r.MeetsSlo) failed = true;
            }
        });
        return [.. results.OrderBy(r => options.Policies.ToList().IndexOf(r.Policy)).ThenBy(r => r.Rate)];
    }

    private ParallelOptions ParallelRuns() => new() { MaxDegreeOfParallelism = options.Parallelism };

    private void Log(string line)
    {
        lock (_logGate) log.WriteLine(line);
    }

    internal static string Show(double? seconds) => seconds switch
    {
        null => "—",
        double.PositiveInfinity => "∞",
        { } s => s.ToString(s < 10 ? "0.###" : "0.#", System.Globalization.CultureInfo.InvariantCulture),
    };

    private static double Round(double rate) => rate >= 10 ? Math.Round(rate, 1) : Math.Round(rate, 2);

    private static double[] Geometric(double from, double to, int points)
    {
        if (to <= from) return [from];
        var ratio = Math.Pow(to / from, 1.0 / (points - 1));
        return [.. Enumerable.Range(0, points).Select(i => from * Math.Pow(ratio, i))];
    }
}
