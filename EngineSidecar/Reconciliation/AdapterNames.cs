using System.Text.RegularExpressions;

namespace HybridServing.EngineSidecar.Reconciliation;

/// <summary>Which adapter names the sidecar accepts. The name becomes the engine's <c>lora_name</c> and the
/// OpenAI <c>model</c> the gateway routes by, so it must be printable, short and free of path syntax.</summary>
internal static partial class AdapterNames
{
    public const int MaxLength = 253;

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._:@+\-]*$")]
    private static partial Regex Allowed();

    /// <summary>Null when <paramref name="name"/> is acceptable, else why not.</summary>
    public static string? Check(string? name)
    {
        if (string.IsNullOrEmpty(name)) return "The adapter name is empty.";
        if (name.Length > MaxLength) return $"The adapter name is {name.Length} characters long; the limit is {MaxLength}.";
        if (name.Contains("..", StringComparison.Ordinal) || name.Contains('/') || name.Contains('\\'))
            return $"The adapter name '{Printable(name)}' contains path syntax ('/', '\\' or '..'), which is refused.";
        if (!Allowed().IsMatch(name))
            return $"The adapter name '{Printable(name)}' may only contain letters, digits and . _ : @ + - and must start with a letter or digit.";
        return null;
    }

    private static string Printable(string s) => new(s.Select(c => char.IsControl(c) ? '?' : c).Take(80).ToArray());
}
