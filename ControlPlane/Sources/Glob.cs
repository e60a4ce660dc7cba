using System.Text;
using System.Text.RegularExpressions;

namespace HybridServing.ControlPlane.Sources;

/// <summary>Shell-style globs over adapter names: <c>*</c>, <c>?</c>, <c>[abc]</c>, <c>[a-z]</c>, <c>[!abc]</c>. Case-sensitive.</summary>
internal static class Glob
{
    /// <summary>Null when <paramref name="pattern"/> is a valid glob, else what is wrong with it.</summary>
    public static string? Check(string pattern)
    {
        try
        {
            _ = ToRegex(pattern);
            return null;
        }
        catch (FormatException e)
        {
            return e.Message;
        }
    }

    public static Regex ToRegex(string pattern)
    {
        var sb = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            switch (c)
            {
                case '*': sb.Append(".*"); break;
                case '?': sb.Append('.'); break;
                case '[':
                    var close = pattern.IndexOf(']', i + 1);
                    if (close < 0) throw new FormatException($"'[' at position {i} has no closing ']'.");
                    var body = pattern[(i + 1)..close];
                    var negate = body.StartsWith('!') || body.StartsWith('^');
                    if (negate) body = body[1..];
                    if (body.Length == 0) throw new FormatException($"empty character class at position {i}.");
                    sb.Append('[');
                    if (negate) sb.Append('^');
                    foreach (var ch in body) sb.Append(ch is '\\' or '[' or '^' ? "\\" + ch : ch.ToString());
                    sb.Append(']');
                    i = close;
                    break;
                default: sb.Append(Regex.Escape(c.ToString())); break;
            }
        }
        sb.Append('$');
        try
        {
            return new Regex(sb.ToString(), RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"not a valid glob: {e.Message}");
        }
    }
}
