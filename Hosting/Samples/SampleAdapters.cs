using HybridServing.Contracts.Peft;

namespace HybridServing.Hosting.Samples;

/// <summary>
/// The sample adapters the sample manifests point at: small but valid PEFT directories with
/// tensors of the base model's real shapes (q_proj and v_proj, rank 8 or 16), generated on first
/// run into <c>AppHost/samples/adapters/</c> (git-ignored) rather than committed as binaries.
/// </summary>
public static class SampleAdapters
{
    public const string FolderName = "adapters";

    public static readonly IReadOnlyList<(string Name, int Rank)> All =
    [
        ("support-en", 8),
        ("support-de", 8),
        ("support-fr", 16),
        ("sql-lora", 16),
    ];

    /// <summary>Writes any sample adapter that is missing or incomplete; returns the adapters folder.</summary>
    public static string EnsureGenerated(string samplesFolder, string baseModel, Action<string> log)
    {
        var root = Path.Combine(samplesFolder, FolderName);
        var shape = BaseModelShape.For(baseModel);
        foreach (var (name, rank) in All)
        {
            var dir = Path.Combine(root, name);
            if (IsValid(dir, rank)) continue;
            log($"generating sample adapter {name} (rank {rank}) in {dir}");
            PeftAdapterWriter.Write(dir, shape, rank, ["q_proj", "v_proj"], seed: rank * 31 + name.Length);
        }
        return root;
    }

    private static bool IsValid(string dir, int rank)
    {
        try
        {
            return PeftAdapter.Read(dir).Rank == rank;
        }
        catch (PeftFormatException)
        {
            return false;
        }
    }
}
