using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.Contracts.Peft;
using HybridServing.LiveValidation.Configuration;

namespace HybridServing.LiveValidation.Workload;

/// <summary>
/// The one workload both sides run: the simulator's own options, adapter catalogue and trace
/// generator (request i has the same adapter, prompt and output length on both sides and at every
/// rate), with adapter sizes equal to the tensor bytes of the PEFT files the live engines read.
/// </summary>
internal sealed class SharedWorkload
{
    /// <summary>The modules every adapter adapts, as the AppHost's sample adapters do (keeps the files small).</summary>
    public static readonly IReadOnlyList<string> TargetModules = ["q_proj", "v_proj"];

    public SharedWorkload(ValidationOptions o)
    {
        Shape = BaseModelShape.For(AdapterCatalog.BaseModel);
        // BF16 A [r, in] and B [out, r] per adapted module and layer: bytes grow linearly with the rank.
        BytesPerRank = 2L * Shape.Layers * TargetModules.Sum(m => (long)Shape.Modules[m].In + Shape.Modules[m].Out);
        Simulation = new SimulationOptions
        {
            Engines = o.Engines,
            Adapters = o.Adapters,
            ZipfExponent = o.ZipfExponent,
            MegabytesPerRank = BytesPerRank / 1e6,
            MaxLoras = o.MaxLoras,
            MaxCpuLoras = o.MaxCpuLoras,
            PromptMean = o.PromptMean,
            OutputMean = o.OutputMean,
            Duration = o.Duration,
            Warmup = o.Warmup,
            Seed = o.Seed,
            Scenarios = [ScenarioNames.Steady],
            Policies = o.Policies,
            Rates = o.Rates,
            RatePerReplica = o.RatePerReplica,
            ReportInterval = o.ReportInterval,
            DemandWindow = o.DemandWindow,
            ControlInterval = o.ControlInterval,
            // The live control path is not time-compressed: its wall time is this many virtual seconds.
            OverflowLatency = o.OverflowLatency * o.TimeScale,
            // The live gateway scrapes every 50 ms of wall time: that is this many virtual seconds.
            ScrapeInterval = ValidationOptions.LiveScrapeSeconds * o.TimeScale,
            // The live control plane reads the manifests' replicas: all (HybridServing's declaration).
            Replicas = new() { All = true },
        };
        Catalog = new AdapterCatalog(Simulation);
    }

    public BaseModelShape Shape { get; }
    public long BytesPerRank { get; }
    public SimulationOptions Simulation { get; }
    public AdapterCatalog Catalog { get; }

    public WorkloadTrace Trace(double rate) => WorkloadGenerator.Generate(Simulation, Catalog, ScenarioNames.Steady, rate);

    /// <summary>
    /// Writes every adapter of the catalogue as a PEFT directory under <paramref name="root"/> with the
    /// Contracts writer (kept between runs: an existing valid directory of the right rank is reused),
    /// and checks that the engines will see exactly the size the simulator charges.
    /// </summary>
    public void WriteAdapters(string root, Action<string> log)
    {
        var written = 0;
        foreach (var a in Catalog.Adapters)
        {
            var dir = Path.Combine(root, a.Name);
            if (!IsValid(dir, a.Rank))
            {
                if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
                PeftAdapterWriter.Write(dir, Shape, a.Rank, TargetModules, seed: Simulation.Seed * 7919 + a.Index);
                written++;
            }
            var size = PeftAdapter.Read(dir).SizeBytes;
            if (size != a.SizeBytes)
                throw new InvalidOperationException($"{dir}: {size} tensor bytes, but the simulator charges {a.SizeBytes} for rank {a.Rank}.");
        }
        log($"adapters: {Catalog.Count} PEFT directories in {root} ({written} written now, {Catalog.Adapters.Sum(a => a.SizeBytes) / 1e9:0.00} GB of tensors)");
    }

    private static bool IsValid(string dir, int rank)
    {
        try
        {
            return PeftAdapter.Read(dir).Rank == rank;
        }
        catch (Exception e) when (e is PeftFormatException or PeftNotFoundException or IOException)
        {
            return false;
        }
    }
}
