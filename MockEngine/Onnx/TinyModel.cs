using HybridServing.Contracts.Peft;

namespace HybridServing.MockEngine.Onnx;

/// <summary>
/// The ONNX backend's model: a Llama-style decoder with test/tiny's linear shapes (2 layers, hidden 64,
/// 4 query heads and 1 key/value head of 16, SwiGLU MLP of 128), a 512-token vocabulary and learned
/// positions, so test/tiny adapters fit it. Weights are drawn from a seeded generator: nothing is
/// downloaded or shipped.
/// </summary>
internal sealed class TinyModel
{
    public const string ShapeName = "test/tiny";
    public const int Vocab = 512;
    public const int HeadDim = 16;
    public const float NormEpsilon = 1e-5f;

    /// <summary>The PEFT module names in the order the graph takes their LoRA inputs.</summary>
    public static readonly IReadOnlyList<string> Modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    public TinyModel(int maxPositions, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPositions, 1);
        Shape = BaseModelShape.For(ShapeName);
        Layers = Shape.Layers;
        Hidden = Shape.Modules["q_proj"].In;
        KvDim = Shape.Modules["k_proj"].Out;
        Mlp = Shape.Modules["gate_proj"].Out;
        Heads = Hidden / HeadDim;
        KvHeads = KvDim / HeadDim;
        MaxPositions = maxPositions;

        var random = new Random(unchecked(0x5EED ^ seed));
        Embedding = Uniform(random, Vocab * Hidden, 1.0f);
        Positions = Uniform(random, maxPositions * Hidden, 0.5f);
        LayerWeights = new LayerWeights[Layers];
        for (var l = 0; l < Layers; l++)
        {
            var linear = new Dictionary<string, float[]>(StringComparer.Ordinal);
            foreach (var module in Modules)
            {
                var (inDim, outDim) = Shape.Modules[module];
                // Stored [in, out] (y = x·W) with a variance that keeps activations of order one.
                linear[module] = Uniform(random, inDim * outDim, MathF.Sqrt(3f / inDim));
            }
            LayerWeights[l] = new LayerWeights(Ones(Hidden), Ones(Hidden), linear);
        }
        FinalNorm = Ones(Hidden);
        LmHead = Uniform(random, Hidden * Vocab, MathF.Sqrt(3f / Hidden) * 2f);
    }

    public BaseModelShape Shape { get; }
    public int Layers { get; }
    public int Hidden { get; }
    public int KvDim { get; }
    public int Mlp { get; }
    public int Heads { get; }
    public int KvHeads { get; }
    public int MaxPositions { get; }
    /// <summary>[Vocab, Hidden].</summary>
    public float[] Embedding { get; }
    /// <summary>[MaxPositions, Hidden].</summary>
    public float[] Positions { get; }
    public LayerWeights[] LayerWeights { get; }
    public float[] FinalNorm { get; }
    /// <summary>[Hidden, Vocab].</summary>
    public float[] LmHead { get; }

    public (int In, int Out) Dims(string module) => Shape.Modules[module];

    private static float[] Uniform(Random random, int count, float bound)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++) values[i] = (float)((random.NextDouble() * 2 - 1) * bound);
        return values;
    }

    private static float[] Ones(int count)
    {
        var values = new float[count];
        Array.Fill(values, 1f);
        return values;
    }
}

/// <summary>One decoder layer: RMSNorm gains before attention and MLP, and the seven linear maps by PEFT module name.</summary>
internal sealed record LayerWeights(float[] AttentionNorm, float[] MlpNorm, IReadOnlyDictionary<string, float[]> Linear);
