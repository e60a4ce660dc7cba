using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using HybridServing.Bench.Cli;
using HybridServing.Bench.Placement;
using HybridServing.Bench.Results;
using HybridServing.ControlPlane.Placement;

namespace HybridServing.Bench.Commands;

/// <summary><c>placement</c>: the ControlPlane's placement solver against docs/benchmarks.md §3.</summary>
internal static class PlacementCommand
{
    public const string Help = """
        placement — the ControlPlane placement solver (docs/benchmarks.md §3), BenchmarkDotNet with [MemoryDiagnoser].
        Targets: full solve of 10,000 adapters x 1,000 engines <= 1 s; one adapter added to a solved cluster <= 10 ms.

        Options (defaults in brackets):
          --adapters N            adapters [10000]
          --engines N             engines [1000]
          --base-models N         distinct base models, Zipf-weighted over engines and adapters [4]
          --engines-per-node N    engines (GPUs) per node, for spreading [8]
          --max-loras N           GPU slots per engine [8]
          --max-cpu-loras N       host-memory slots per engine (the solver's capacity) [32]
          --min-replicas N        replicas min [1]
          --max-replicas N        replicas max [2]
          --memory-budget-gib F   adapter memory budget per engine, 0 = none [8]
          --rank-mix LIST         rank:weight,... [8:40,16:30,32:20,64:10]
          --seed N                workload seed [42]
          --quick                 Stopwatch timing instead of BenchmarkDotNet (fast feedback)
          --iterations N          measured iterations [10]
          --warmup N              warm-up iterations [2]
          --results DIR           results folder [bench/results]
        """;

    private static readonly HashSet<string> Valued =
    [
        "--adapters", "--engines", "--base-models", "--engines-per-node", "--max-loras", "--max-cpu-loras", "--min-replicas",
        "--max-replicas", "--memory-budget-gib", "--rank-mix", "--seed", "--iterations", "--warmup", "--results",
    ];

    public static int Run(string[] args)
    {
        var a = new BenchArgs("placement", args, Valued, new HashSet<string> { "--quick" });
        var maxLoras = a.Int("--max-loras", 8, 1, 1024);
        var minReplicas = a.Int("--min-replicas", 1, 0, 1000);
        var maxReplicas = a.Int("--max-replicas", 2, 1, 1000);
        if (maxReplicas < minReplicas) throw new BenchUsageException($"--max-replicas: {maxReplicas} is below --min-replicas {minReplicas}");
        var shape = new PlacementShape
        {
            Adapters = a.Int("--adapters", 10_000, 1, 10_000_000),
            Engines = a.Int("--engines", 1_000, 1, 1_000_000),
            BaseModels = a.Int("--base-models", 4, 1, 1000),
            EnginesPerNode = a.Int("--engines-per-node", 8, 1, 1024),
            MaxLoras = maxLoras,
            MaxCpuLoras = a.Int("--max-cpu-loras", 32, maxLoras, 100_000),
            MinReplicas = minReplicas,
            MaxReplicas = maxReplicas,
            MemoryBudgetBytes = (long)(a.Double("--memory-budget-gib", 8, 0, 1_000_000) * (1L << 30)),
            RankMix = a.RankMix("--rank-mix", [(8, 40), (16, 30), (32, 20), (64, 10)]),
            Seed = a.Int("--seed", 42, int.MinValue),
        };
        var quick = a.Has("--quick");
        var iterations = a.Int("--iterations", 10, 1, 1000);
        var warmup = a.Int("--warmup", 2, 0, 1000);
        var resultsDir = a.String("--results", RepoPaths.DefaultResults);

        var parameters = new Dictionary<string, string>(a.Given);
        if (quick) parameters["--quick"] = "";
        var report = new BenchReport("placement", parameters);

        Console.WriteLine($"Building the workload: {shape.Adapters} adapters x {shape.Engines} engines (seed {shape.Seed})...");
        var workload = new PlacementWorkload(shape);
        var (solved, plan) = workload.SolveOnce();
        DescribePlan(report, workload, solved, plan);

        double fullMs, addMs;
        long fullAlloc, addAlloc;
        if (quick)
        {
            (fullMs, fullAlloc, var fullRange) = Time(() => PlacementSolver.Solve(workload.Cluster, workload.Demands, PlacementOptions.Default), warmup, iterations);
            AdapterDemand[] plusOne = [.. workload.Demands, workload.Extra];
            (addMs, addAlloc, var addRange) = Time(() => PlacementSolver.Solve(solved, plusOne, PlacementOptions.Default), warmup, iterations);
            var t = report.Table($"Stopwatch, {iterations} iterations after {warmup} warm-up (median; min..max)", "case", "median", "min..max", "allocated/op");
            t.Add("full solve", Ms(fullMs), fullRange, Mb(fullAlloc));
            t.Add("add one adapter to a solved cluster", Ms(addMs), addRange, Mb(addAlloc));
            report.Notes.Add("--quick: Stopwatch timing for fast feedback; the README's figures come from the BenchmarkDotNet run (no --quick).");
        }
        else
        {
            if (RepoPaths.Configuration != "Release")
                throw new BenchUsageException("placement: BenchmarkDotNet needs an optimized build: run with dotnet run -c Release --project bench -- placement (or use --quick)");
            PlacementBenchmarks.Shape = shape;
            var job = Job.Dry
                .WithToolchain(InProcessEmitToolchain.Instance)
                .WithStrategy(RunStrategy.Monitoring)
                .WithLaunchCount(1)
                .WithWarmupCount(warmup)
                .WithIterationCount(iterations)
                .WithInvocationCount(1)
                .WithUnrollFactor(1)
                .WithId("placement");
            var config = ManualConfig.CreateEmpty()
                .AddJob(job)
                .AddLogger(ConsoleLogger.Default)
                .AddColumnProvider(DefaultColumnProviders.Instance)
                .AddDiagnoser(MemoryDiagnoser.Default)
                .WithArtifactsPath(Path.Combine(Path.GetTempPath(), "hybridserving-bench", "BenchmarkDotNet.Artifacts"));
            var summary = BenchmarkRunner.Run<PlacementBenchmarks>(config);
            if (summary.HasCriticalValidationErrors || summary.Reports.Any(r => r.ResultStatistics is null))
            {
                Console.Error.WriteLine("placement: BenchmarkDotNet did not produce results (see its log above).");
                return 1;
            }
            var t = report.Table($"BenchmarkDotNet (in-process, {iterations} iterations after {warmup} warm-up, 1 invocation each)",
                "case", "mean", "median", "stddev", "min..max", "allocated/op", "gen0/gen1/gen2 per op");
            fullMs = addMs = 0;
            fullAlloc = addAlloc = 0;
            foreach (var r in summary.Reports)
            {
                var s = r.ResultStatistics!;
                var alloc = r.GcStats.GetBytesAllocatedPerOperation(r.BenchmarkCase) ?? 0;
                var ops = r.GcStats.TotalOperations == 0 ? 1 : r.GcStats.TotalOperations;
                var name = r.BenchmarkCase.Descriptor.WorkloadMethodDisplayInfo.Trim('\'');
                t.Add(name, Ms(s.Mean / 1e6), Ms(s.Median / 1e6), Ms(s.StandardDeviation / 1e6), $"{Ms(s.Min / 1e6)}..{Ms(s.Max / 1e6)}", Mb(alloc),
                    string.Create(CultureInfo.InvariantCulture, $"{(double)r.GcStats.Gen0Collections / ops:0.##}/{(double)r.GcStats.Gen1Collections / ops:0.##}/{(double)r.GcStats.Gen2Collections / ops:0.##}"));
                if (r.BenchmarkCase.Descriptor.WorkloadMethod.Name == nameof(PlacementBenchmarks.FullSolve)) { fullMs = s.Median / 1e6; fullAlloc = alloc; }
                else { addMs = s.Median / 1e6; addAlloc = alloc; }
            }
        }

        var standard = shape.Adapters == 10_000 && shape.Engines == 1_000;
        report.Targets.Add(new TargetCheck($"full solve, {shape.Adapters} x {shape.Engines} (median)", Ms(fullMs), "<= 1 s (10,000 x 1,000)", standard ? fullMs <= 1000 : null));
        report.Targets.Add(new TargetCheck("one adapter added to a solved cluster (median)", Ms(addMs), "<= 10 ms", standard ? addMs <= 10 : null));
        if (!standard) report.Notes.Add("Targets apply to 10,000 adapters x 1,000 engines; this run used another shape, so they are not judged.");
        report.Data["fullSolveMs"] = fullMs;
        report.Data["fullSolveAllocatedBytes"] = fullAlloc;
        report.Data["addOneMs"] = addMs;
        report.Data["addOneAllocatedBytes"] = addAlloc;
        report.Data["mode"] = quick ? "stopwatch" : "benchmarkdotnet";
        report.Write(resultsDir);
        return 0;
    }

    private static void DescribePlan(BenchReport report, PlacementWorkload workload, ClusterSnapshot solved, Plan plan)
    {
        var shape = workload.Shape;
        var replicas = plan.AdapterEngines.Values.Sum(e => e.Count);
        var slots = workload.Cluster.Engines.Sum(e => e.Slots);
        // What the incremental change does to the solved plan: only the new adapter should move.
        var next = PlacementSolver.Solve(solved, [.. workload.Demands, workload.Extra], PlacementOptions.Default);
        var moved = workload.Demands.Count(d => !plan.EnginesFor(d.Name).SequenceEqual(next.EnginesFor(d.Name)));
        var t = report.Table("Workload and plan", "figure", "value");
        t.Add("adapters x engines", $"{shape.Adapters} x {shape.Engines} ({shape.BaseModels} base models, {shape.EnginesPerNode} engines/node)");
        t.Add("rank mix", string.Join(", ", shape.RankMix.Select(r => $"{r.Rank}:{r.Weight.ToString(CultureInfo.InvariantCulture)}")));
        t.Add("replicas", $"min {shape.MinReplicas}, max {shape.MaxReplicas}");
        t.Add("slots (max(max_loras, max_cpu_loras) x engines)", $"{slots} ({shape.MaxLoras}/{shape.MaxCpuLoras} per engine, budget {Mb(shape.MemoryBudgetBytes)})");
        t.Add("replicas placed", $"{replicas} ({100.0 * replicas / Math.Max(1, slots):0}% of slots)");
        t.Add("adapters short of their minimum", plan.Shortfalls.Count.ToString(CultureInfo.InvariantCulture)
            + (plan.Shortfalls.Count == 0 ? "" : " (" + string.Join(", ", plan.Shortfalls.Values.GroupBy(s => s.Reason).Select(g => $"{g.Key} {g.Count()}")) + ")"));
        t.Add("preemptions", plan.Preemptions.Count.ToString(CultureInfo.InvariantCulture));
        t.Add("incremental: new adapter placed on / other adapters moved", $"{next.EnginesFor(workload.Extra.Name).Count} engine(s) / {moved}");
        report.Data["replicasPlaced"] = replicas;
        report.Data["slots"] = slots;
        report.Data["shortfalls"] = plan.Shortfalls.Count;
        report.Data["preemptions"] = plan.Preemptions.Count;
        report.Data["incrementalMoved"] = moved;
    }

    private static (double MedianMs, long AllocatedPerOp, string Range) Time(Func<Plan> solve, int warmup, int iterations)
    {
        for (var i = 0; i < warmup; i++) solve();
        var times = new double[iterations];
        long allocated = 0;
        for (var i = 0; i < iterations; i++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            var sw = Stopwatch.StartNew();
            solve();
            times[i] = sw.Elapsed.TotalMilliseconds;
            allocated += GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Array.Sort(times);
        return (times[times.Length / 2], allocated / iterations, $"{Ms(times[0])}..{Ms(times[^1])}");
    }

    internal static string Ms(double ms) => ms >= 100
        ? ms.ToString("0", CultureInfo.InvariantCulture) + " ms"
        : ms.ToString("0.00", CultureInfo.InvariantCulture) + " ms";

    internal static string Mb(long bytes) => (bytes / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture) + " MB";
}
