using System.Globalization;

namespace HybridServing.ClusterSimulator.Configuration;

/// <summary>A wrong command-line value: the message names the flag and says what is allowed. Exit code 2.</summary>
internal sealed class OptionException(string message) : Exception(message);

/// <summary>One flag of a bench program: its name, its help line and how a value changes the options.</summary>
internal sealed record OptionFlag<T>(string Name, string Help, Func<T, string, T> Apply);

/// <summary>
/// <c>--flag value</c> / <c>--flag=value</c> parsing and value checks shared by the bench programs
/// (the cluster simulator and the live validation): every value is checked before anything runs.
/// </summary>
internal static class OptionParser
{
    public static string Help<T>(string project, IEnumerable<OptionFlag<T>> flags) =>
        $"Usage: dotnet run -c Release --project {project} -- [options]\n\n" +
        string.Join("\n", flags.Select(f => $"  {f.Name,-20} {f.Help}")) +
        "\n  --record             write the results into the tracked bench/results/ (default: the git-ignored bench/results/local/)" +
        "\n  --help               this text";

    /// <summary>The options after every flag in <paramref name="args"/>; null when --help was asked for.</summary>
    public static T? Parse<T>(IReadOnlyList<string> args, T defaults, IReadOnlyList<OptionFlag<T>> flags) where T : class
    {
        var options = defaults;
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "--help" or "-h") return null;
            string name, value;
            var eq = arg.IndexOf('=');
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                name = arg[..eq];
                value = arg[(eq + 1)..];
            }
            else
            {
                name = arg;
                if (i + 1 >= args.Count) throw new OptionException($"{name}: a value is required.");
                value = args[++i];
            }
            var flag = flags.FirstOrDefault(f => f.Name == name)
                ?? throw new OptionException($"{name}: unknown option; run with --help for the list.");
            options = flag.Apply(options, value);
        }
        return options;
    }

    public static string Show(double x) => x.ToString(CultureInfo.InvariantCulture);

    public static int Int(string v, string flag, int min, int max)
    {
        if (!int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var x))
            throw new OptionException($"{flag}: '{v}' is not an integer.");
        if (x < min || x > max) throw new OptionException($"{flag}: {x} is out of range [{min}, {max}].");
        return x;
    }

    public static double Double(string v, string flag, double min, double max)
    {
        if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) || !double.IsFinite(x))
            throw new OptionException($"{flag}: '{v}' is not a number.");
        if (x < min || x > max) throw new OptionException($"{flag}: {Show(x)} is out of range [{Show(min)}, {Show(max)}].");
        return x;
    }

    /// <summary>A comma-separated list of numbers, each in range; sorted, duplicates dropped.</summary>
    public static double[] DoubleList(string v, string flag, double min, double max)
    {
        var parts = v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new OptionException($"{flag}: give at least one value.");
        return [.. parts.Select(p => Double(p, flag, min, max)).Distinct().Order()];
    }

    public static string NonEmpty(string v, string flag) =>
        string.IsNullOrWhiteSpace(v) ? throw new OptionException($"{flag}: must not be empty.") : v;

    /// <summary>
    /// A comma-separated choice among <paramref name="allowed"/> (any case) or <c>all</c>; in the order of
    /// <paramref name="allowed"/>, each once. <paramref name="why"/> is added to the message for a value not allowed.
    /// </summary>
    public static string[] Choice(string v, string flag, IReadOnlyList<string> allowed, string? why = null)
    {
        if (v.Trim().Equals("all", StringComparison.OrdinalIgnoreCase)) return [.. allowed];
        var chosen = new List<string>();
        foreach (var part in v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var match = allowed.FirstOrDefault(a => a.Equals(part, StringComparison.OrdinalIgnoreCase))
                ?? throw new OptionException($"{flag}: '{part}' is not one of {string.Join(", ", allowed)}{(why is null ? "" : $" ({why})")}.");
            if (!chosen.Contains(match)) chosen.Add(match);
        }
        if (chosen.Count == 0) throw new OptionException($"{flag}: give at least one of {string.Join(", ", allowed)}.");
        return [.. allowed.Where(chosen.Contains)];
    }
}
