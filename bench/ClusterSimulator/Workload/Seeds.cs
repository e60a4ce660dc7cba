namespace HybridServing.ClusterSimulator.Workload;

/// <summary>
/// Stable seed derivation. <see cref="HashCode"/> and string hash codes are randomised per process,
/// so they would make runs differ; this is SplitMix64, the same in every process.
/// </summary>
internal static class Seeds
{
    public static int Derive(int seed, int stream)
    {
        var z = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)(uint)stream + 0x632BE59BD9B4E019UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (int)(z & 0x7FFF_FFFF);
    }

    /// <summary>A stable number for a name (FNV-1a).</summary>
    public static int Of(string name)
    {
        var h = 2166136261u;
        foreach (var c in name) h = unchecked((h ^ c) * 16777619u);
        return (int)(h & 0x7FFF_FFFF);
    }
}
