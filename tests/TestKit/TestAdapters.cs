using HybridServing.Contracts.Peft;

namespace HybridServing.TestKit;

/// <summary>Real PEFT adapter directories for tests.</summary>
public static class TestAdapters
{
    /// <summary>The model the tiny adapters fit: 2 layers, hidden 64. Engines under test serve it.</summary>
    public const string TinyModel = "test/tiny";

    /// <summary>Writes a small but valid adapter for <paramref name="baseModel"/> and returns its directory.</summary>
    public static string Write(string root, string name, int rank = 8, string baseModel = TinyModel, params string[] targetModules)
    {
        var dir = Path.Combine(root, name);
        PeftAdapterWriter.Write(dir, BaseModelShape.For(baseModel), rank,
            targetModules.Length > 0 ? targetModules : ["q_proj", "v_proj"], seed: name.GetHashCode(StringComparison.Ordinal));
        return dir;
    }
}
