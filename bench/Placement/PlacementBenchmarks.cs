using BenchmarkDotNet.Attributes;
using HybridServing.ControlPlane.Placement;

namespace HybridServing.Bench.Placement;

/// <summary>
/// BENCHMARKS.md §3: a full solve of N adapters × M engines (target ≤ 1 s for 10,000 × 1,000) and
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
    }

    [Benchmark(Description = "full solve")]
    public int FullSolve() => PlacementSolver.Solve(_workload.Cluster, _workload.Demands, PlacementOptions.Default).AdapterEngines.Count;

    [Benchmark(Description = "add one adapter to a solved cluster")]
    public int AddOne() => PlacementSolver.Solve(_solved, _plusOne, PlacementOptions.Default).AdapterEngines.Count;
}
