using System.Text;
using Microsoft.ML.Tokenizers;

namespace HybridServing.MockEngine.Serving;

/// <summary>Counts tokens with a real BPE tokenizer (cl100k, bundled, works offline).</summary>
internal sealed class TokenCounter
{
    private static readonly Lazy<Tokenizer> Shared = new(() => TiktokenTokenizer.CreateForModel("gpt-4"));

    /// <summary>The cl100k tokenizer itself (the ONNX backend maps its ids onto the tiny model's vocabulary).</summary>
    internal static Tokenizer Tokenizer => Shared.Value;

    public int Count(string text) => text.Length == 0 ? 0 : Shared.Value.CountTokens(text);

    /// <summary>
    /// Prompt tokens of a chat request after a Llama-3-style template: one BOS, per message a
    /// header (3 special tokens around the role, then "\n\n") and the content ending in an
    /// end-of-turn token, then the assistant header that opens the answer.
    /// </summary>
    public int CountChat(IReadOnlyList<(string Role, string Content)> messages)
    {
        var total = 1;
        foreach (var (role, content) in messages) total += 3 + Count(role) + 1 + Count(content);
        return total + 3 + Count("assistant") + 1;
    }
}

/// <summary>
/// Deterministic answer text: the same seed always gives the same words. Every piece is one
/// cl100k token, so the model's token events and the usage count agree.
/// </summary>
internal static class TextGenerator
{
    // Common English words that are single cl100k tokens with their leading space (checked by a test).
    internal static readonly string[] Words =
    [
        " the", " of", " and", " to", " in", " is", " that", " for", " it", " as", " was", " with", " be", " by",
        " on", " not", " he", " this", " are", " or", " his", " from", " at", " which", " but", " have", " an",
        " had", " they", " you", " were", " their", " one", " all", " we", " can", " her", " has", " there",
        " been", " if", " more", " when", " will", " would", " who", " so", " no", " model", " engine", " data",
        " time", " first", " new", " some", " could", " these", " two", " may", " other", " then", " do", " into",
        " any", " only", " its", " over", " such", " our", " what", " most", " about", " out", " also", " up",
        " than", " them", " like", " each", " many", " very", " make", " well", " through", " long", " where",
        " much", " good", " should", " because", " each", " those", " people", " world", " system", " work",
        " part", " number", " request", " answer", " small", " large", " light", " water", " between", " under",
        " never", " after", " before", " always", " often", " simple", " server", " result", " value", " test",
    ];

    private static readonly string[] Punctuation = [".", ","];

    /// <summary>Natural answer length (before max_tokens) for a seed: 16..128 tokens.</summary>
    public static int NaturalLength(ulong seed) => 16 + (int)(Mix(seed ^ 0x9E3779B97F4A7C15UL) % 113);

    /// <summary>The <paramref name="count"/> pieces (one token each) of the answer for <paramref name="seed"/>.</summary>
    public static string[] Pieces(ulong seed, int count)
    {
        var random = new Random(unchecked((int)Mix(seed)));
        var pieces = new string[count];
        for (var i = 0; i < count; i++)
        {
            // A punctuation mark now and then, never twice in a row.
            pieces[i] = i > 0 && pieces[i - 1].Length > 1 && random.Next(8) == 0
                ? Punctuation[random.Next(Punctuation.Length)]
                : Words[random.Next(Words.Length)];
        }
        return pieces;
    }

    /// <summary>Stable seed from the engine seed, the model and the prompt (string.GetHashCode is per process).</summary>
    public static ulong SeedFor(int engineSeed, long? requestSeed, string model, string prompt)
    {
        if (requestSeed is { } s) return Mix(unchecked((ulong)s) ^ 0xA5A5A5A5A5A5A5A5UL);
        var hash = 14695981039346656037UL; // FNV-1a 64
        foreach (var b in Encoding.UTF8.GetBytes($"{engineSeed}\u0001{model}\u0001{prompt}"))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return hash;
    }

    private static ulong Mix(ulong x)
    {
        // splitmix64 finaliser: spreads nearby seeds apart.
        x ^= x >> 30; x *= 0xBF58476D1CE4E5B9UL;
        x ^= x >> 27; x *= 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
