using HybridServing.ClusterSimulator.Configuration;
using HybridServing.MockEngine.Performance;

namespace HybridServing.ClusterSimulator.Workload;

/// <summary>One adapter of the benchmark: its name, rank and size, and its popularity rank in steady state.</summary>
internal sealed record SimAdapter(int Index, string Name, int Rank, long SizeBytes, int PopularityRank)
{
    public AdapterSpec Spec { get; } = new(Name, Rank, SizeBytes, AdapterSource.LocalDisk);
}

/// <summary>
/// The N adapters: ranks drawn from the rank mix, sizes from rank, and a seeded shuffle from
/// popularity rank to adapter so that the hottest adapters are not the first names (name order
/// drives tie-breaks in placement; popularity must not line up with it).
/// </summary>
internal sealed class AdapterCatalog
{
    public const string BaseModel = "meta-llama/Llama-3.1-8B-Instruct";

    public AdapterCatalog(SimulationOptions options)
    {
        var random = new Random(Seeds.Derive(options.Seed, 0xCA7A));
        var order = Enumerable.Range(0, options.Adapters).ToArray();
        random.Shuffle(order);
        // order[popularityRank] = adapter index
        ByPopularity = order;
        var rankOf = new int[options.Adapters];
        for (var r = 0; r < order.Length; r++) rankOf[order[r]] = r;
        var adapters = new SimAdapter[options.Adapters];
        var width = Math.Max(4, (options.Adapters - 1).ToString(System.Globalization.CultureInfo.InvariantCulture).Length);
        for (var i = 0; i < adapters.Length; i++)
        {
            var rank = DrawRank(random.NextDouble(), options.RankMix);
            var bytes = (long)Math.Round(rank * options.MegabytesPerRank * 1_000_000);
            adapters[i] = new SimAdapter(i, "lora-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(width, '0'), rank, bytes, rankOf[i]);
        }
        Adapters = adapters;
    }

    public IReadOnlyList<SimAdapter> Adapters { get; }
    /// <summary>Adapter index for each steady-state popularity rank (0 = hottest).</summary>
    public IReadOnlyList<int> ByPopularity { get; }
    public int Count => Adapters.Count;

    private static int DrawRank(double u, IReadOnlyList<RankShare> mix)
    {
        double running = 0;
        foreach (var share in mix)
        {
            running += share.Share;
            if (u < running) return share.Rank;
        }
        return mix[^1].Rank;
    }
}
