using HybridServing.Contracts.Peft;

namespace HybridServing.Hosting.Samples;

/// <summary>
/// The sample adapters the sample manifests point at: small but valid PEFT directories with
/// tensors of the base model's real shapes (q_proj and v_proj, rank 8 or 16), generated on first
/// run into <c>AppHost/samples/adapters/</c> (git-ignored) rather than committed as binaries.
/// For engines on the ONNX backend (<c>--mock-backend onnx</c>) they are written at its model's
/// shapes (test/tiny's) with trained (non-zero) lora_B, so each adapter changes the answers; a
/// folder generated for the other kind is rewritten.
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

    /// <summary>The shapes of the ONNX backend's model (whatever base model name the engines serve).</summary>
    public const string OnnxShape = "test/tiny";

    /// <summary>Writes any sample adapter that is missing or incomplete; returns the adapters folder.</summary>
    public static string EnsureGenerated(string samplesFolder, string baseModel, Action<string> log, bool onnxBackend = false)
    {
        var root = Path.Combine(samplesFolder, FolderName);
        var shape = BaseModelShape.For(onnxBackend ? OnnxShape : baseModel);
        foreach (var (name, rank) in All)
        {
            var dir = Path.Combine(root, name);
            if (IsValid(dir, rank, shape.Name)) continue;
            log($"generating sample adapter {name} (rank {rank}, {shape.Name} shapes) in {dir}");
            PeftAdapterWriter.Write(dir, shape, rank, ["q_proj", "v_proj"], seed: rank * 31 + name.Length, trained: onnxBackend);
        }
        return root;
    }

    private static bool IsValid(string dir, int rank, string shapeName)
    {
        try
        {
            var info = PeftAdapter.Read(dir);
            return info.Rank == rank && info.Config.BaseModelNameOrPath == shapeName;
        }
        catch (PeftFormatException)
        {
            return false;
        }
    }
}
