using HybridServing.ControlPlane.Placement;

namespace HybridServing.Bench.Placement;

/// <summary>The shape of a placement workload; every item is a command-line parameter.</summary>
internal sealed record PlacementShape
{
    public int Adapters { get; init; } = 10_000;
    public int Engines { get; init; } = 1_000;
    public int BaseModels { get; init; } = 4;
    public int EnginesPerNode { get; init; } = 8;
    public int MaxLoras { get; init; } = 8;
    public int MaxCpuLoras { get; init; } = 32;
    public int MinReplicas { get; init; } = 1;
    public int MaxReplicas { get; init; } = 2;

    /// <summary>Adapter memory budget per engine (host memory for its registered adapters); 0 = no budget.</summary>
    public long MemoryBudgetBytes { get; init; } = 8L << 30;

    /// <summary>docs/benchmarks.md §1: rank mix {8: 40%, 16: 30%, 32: 20%, 64: 10%}.</summary>
    public IReadOnlyList<(int Rank, double Weight)> RankMix { get; init; } = [(8, 40), (16, 30), (32, 20), (64, 10)];

    public int Seed { get; init; } = 42;

    /// <summary>docs/benchmarks.md §1: about 5.2 MB per unit of rank for an 8B model with all linear layers adapted.</summary>
    public const long BytesPerRank = 5_200_000;
}

/// <summary>
/// A seeded, realistic placement input: engines grouped on nodes, several base models (weighted),
/// node labels (GPU kind, zone, pool), a few engines with a lower <c>max_lora_rank</c>; adapters with
/// the rank mix, sizes from rank, mostly unrestricted selectors with some GPU- or zone-pinned ones,
/// replicas min..max and three priority levels (the highest may preempt).
/// </summary>
internal sealed class PlacementWorkload
{
    private static readonly string[] Models =
    [
        "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3",
        "google/gemma-2-9b-it", "microsoft/Phi-3-medium-4k-instruct", "meta-llama/Llama-3.2-3B-Instruct",
    ];

    private static readonly string[] Zones = ["zone-a", "zone-b", "zone-c"];

    public PlacementWorkload(PlacementShape shape)
    {
        Shape = shape;
        var random = new Random(shape.Seed);
        var models = Enumerable.Range(0, shape.BaseModels).Select(i => i < Models.Length ? Models[i] : $"model-{i}").ToArray();
        // Popular base models get more engines and more adapters: weights 1, 1/2, 1/3, ... (Zipf-like).
        var modelWeights = models.Select((_, i) => 1.0 / (i + 1)).ToArray();

        var engines = new List<EngineSnapshot>(shape.Engines);
        for (var i = 0; i < shape.Engines; i++)
        {
            var node = i / shape.EnginesPerNode;
            // One node = one kind of GPU, one zone, one pool (labels are node facts).
            var nodeRandom = new Random(HashCode.Combine(shape.Seed, node));
            var gpu = nodeRandom.NextDouble() < 0.7 ? "h100" : "a100";
            var labels = new Dictionary<string, string>
            {
                ["hybridserving.io/gpu"] = gpu,
                ["topology.kubernetes.io/zone"] = Zones[nodeRandom.Next(Zones.Length)],
                ["pool"] = nodeRandom.NextDouble() < 0.8 ? "serving" : "batch",
            };
            engines.Add(new EngineSnapshot(
                Name: $"engine-{i:D5}",
                Node: $"node-{node:D4}",
                BaseModels: [Pick(random, models, modelWeights)],
                Labels: labels,
                MaxLoras: shape.MaxLoras,
                MaxCpuLoras: shape.MaxCpuLoras,
                MaxLoraRank: random.NextDouble() < 0.1 ? 32 : 64,
                AdapterMemoryBudgetBytes: shape.MemoryBudgetBytes,
                Current: []));
        }
        Cluster = new ClusterSnapshot(engines);

        var ranks = shape.RankMix.Select(r => r.Rank).ToArray();
        var rankWeights = shape.RankMix.Select(r => r.Weight).ToArray();
        var h100 = new EngineSelector(new Dictionary<string, string> { ["hybridserving.io/gpu"] = "h100" }, []);
        var zonesAb = new EngineSelector(new Dictionary<string, string>(),
            [new SelectorRequirement("topology.kubernetes.io/zone", "In", ["zone-a", "zone-b"])]);
        var notBatch = new EngineSelector(new Dictionary<string, string>(), [new SelectorRequirement("pool", "NotIn", ["batch"])]);
        var demands = new List<AdapterDemand>(shape.Adapters);
        for (var i = 0; i < shape.Adapters; i++) demands.Add(NewDemand(random, $"adapter-{i:D6}", models, modelWeights, ranks, rankWeights, h100, zonesAb, notBatch));
        Demands = demands;

        // The adapter added incrementally: a fresh name, drawn from the same distributions.
        Extra = NewDemand(new Random(shape.Seed + 1), "adapter-new", models, modelWeights, ranks, rankWeights, h100, zonesAb, notBatch);
    }

    public PlacementShape Shape { get; }
    public ClusterSnapshot Cluster { get; }
    public IReadOnlyList<AdapterDemand> Demands { get; }
    public AdapterDemand Extra { get; }

    private AdapterDemand NewDemand(Random random, string name, string[] models, double[] modelWeights, int[] ranks, double[] rankWeights,
        EngineSelector h100, EngineSelector zonesAb, EngineSelector notBatch)
    {
        var rank = Pick(random, ranks, rankWeights);
        var s = random.NextDouble();
        var selector = s < 0.70 ? EngineSelector.Everything : s < 0.85 ? notBatch : s < 0.95 ? h100 : zonesAb;
        var p = random.NextDouble();
        var priority = p < 0.80 ? 0 : p < 0.95 ? 10 : 100;
        return new AdapterDemand(
            Name: name,
            BaseModel: Pick(random, models, modelWeights),
            Rank: rank,
            MemoryBytes: rank * PlacementShape.BytesPerRank,
            Selector: selector,
            MinReplicas: Shape.MinReplicas,
            MaxReplicas: Shape.MaxReplicas,
            Priority: priority,
            CanPreempt: priority >= 100);
    }

    private static T Pick<T>(Random random, T[] items, double[] weights)
    {
        var total = weights.Sum();
        var x = random.NextDouble() * total;
        for (var i = 0; i < items.Length; i++)
        {
            x -= weights[i];
            if (x < 0) return items[i];
        }
        return items[^1];
    }

    /// <summary>Solves the cluster, then returns it with that plan as its current state (a solved cluster).</summary>
    public (ClusterSnapshot Solved, Plan Plan) SolveOnce()
    {
        var plan = PlacementSolver.Solve(Cluster, Demands, PlacementOptions.Default);
        return (plan.Apply(Cluster), plan);
    }
}
