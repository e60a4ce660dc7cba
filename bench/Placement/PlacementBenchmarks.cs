using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using HybridServing.ControlPlane.Placement;

namespace HybridServing.Bench.Placement;

/// <summary>
/// docs/benchmarks.md §3: a full solve of N adapters × M engines (target ≤ 1 s for 10,000 × 1,000) and
/// one adapter added to a solved cluster (target ≤ 10 ms). The workload comes from
/// <see cref="Shape"/>, set by the command line before BenchmarkDotNet runs (in-process toolchain).
/// </summary>
[MemoryDiagnoser]
public class PlacementBenchmarks
{
    internal static PlacementShape Shape { get; set; } = new();

    private PlacementWorkload _workload = null!;
    private ClusterSnapshot _solved = null!;
    private AdapterDemand[] _plusOne = null!;

    [GlobalSetup]
    public void Setup()
    {
        _workload = new PlacementWorkload(Shape);
        (_solved, _) = _workload.SolveOnce();
        _plusOne = [.. _workload.Demands, _workload.Extra];
        WarmUpJit();
    }

    /// <summary>
    /// The reconciler calls the solver on every pass for as long as the control plane runs, so the
    /// figure that matters is the steady state. The tiered JIT optimizes a method only after about 30
    /// calls (and a short quiet period), and each iteration here is one call: with a couple of warm-up
    /// iterations BenchmarkDotNet would mostly time unoptimized code. So the solver is run to steady
    /// state first, on a small workload of the same shape (untimed).
    /// </summary>
    private static void WarmUpJit()
    {
        var small = new PlacementWorkload(Shape with { Adapters = Math.Min(Shape.Adapters, 1_000), Engines = Math.Min(Shape.Engines, 100) });
        var (solved, _) = small.SolveOnce();
        AdapterDemand[] plusOne = [.. small.Demands, small.Extra];
        var until = Stopwatch.GetTimestamp() + 2 * Stopwatch.Frequency;
        for (var i = 0; i < 100 || Stopwatch.GetTimestamp() < until; i++)
        {
            PlacementSolver.Solve(small.Cluster, small.Demands, PlacementOptions.Default);
            PlacementSolver.Solve(solved, plusOne, PlacementOptions.Default);
        }
    }

    [Benchmark(Description = "full solve")]
    public int FullSolve() => PlacementSolver.Solve(_workload.Cluster, _workload.Demands, PlacementOptions.Default).AdapterEngines.Count;

    [Benchmark(Description = "add one adapter to a solved cluster")]
    public int AddOne() => PlacementSolver.Solve(_solved, _plusOne, PlacementOptions.Default).AdapterEngines.Count;
}
