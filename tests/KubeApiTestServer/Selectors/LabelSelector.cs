using System.Text.RegularExpressions;

namespace HybridServing.KubeApiTestServer.Selectors;

/// <summary>
/// The <c>labelSelector</c> query syntax: <c>a=b</c>, <c>a==b</c>, <c>a!=b</c>, <c>a in (x,y)</c>,
/// <c>a notin (x,y)</c>, <c>a</c> (exists), <c>!a</c> (does not exist), joined by commas (AND).
/// As in Kubernetes, <c>!=</c> and <c>notin</c> also match objects without the label.
/// </summary>
internal sealed partial class LabelSelector
{
    public static readonly LabelSelector Everything = new([]);

    private readonly IReadOnlyList<Requirement> _requirements;

    private LabelSelector(IReadOnlyList<Requirement> requirements) => _requirements = requirements;

    public bool IsEverything => _requirements.Count == 0;

    /// <exception cref="FormatException">The selector does not parse; the message says which requirement and why.</exception>
    public static LabelSelector Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return Everything;
        }

        var requirements = new List<Requirement>();
        foreach (var part in SplitTopLevel(text))
        {
            requirements.Add(ParseRequirement(part.Trim(), text));
        }

        return new LabelSelector(requirements);
    }

    public bool Matches(IReadOnlyDictionary<string, string> labels) => _requirements.All(r => r.Matches(labels));

    private static IEnumerable<string> SplitTopLevel(string text)
    {
        var depth = 0;
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            switch (text[i])
            {
                case '(':
                    depth++;
                    break;
                case ')':
                    depth--;
                    break;
                case ',' when depth == 0:
                    yield return text[start..i];
                    start = i + 1;
                    break;
            }
        }

        yield return text[start..];
    }

    private static Requirement ParseRequirement(string part, string whole)
    {
        if (part.Length == 0)
        {
            throw new FormatException($"unable to parse requirement: found empty requirement in \"{whole}\"");
        }

        Match m;
        if ((m = NotExistsPattern().Match(part)).Success)
        {
            return new Requirement(ValidKey(m.Groups["key"].Value), Operator.DoesNotExist, []);
        }

        if ((m = SetPattern().Match(part)).Success)
        {
            var values = m.Groups["values"].Value.Split(',').Select(v => ValidValue(v.Trim())).ToArray();
            var op = m.Groups["op"].Value == "in" ? Operator.In : Operator.NotIn;
            return new Requirement(ValidKey(m.Groups["key"].Value), op, values);
        }

        if ((m = EqualityPattern().Match(part)).Success)
        {
            var op = m.Groups["op"].Value == "!=" ? Operator.NotEquals : Operator.Equals;
            return new Requirement(ValidKey(m.Groups["key"].Value), op, [ValidValue(m.Groups["value"].Value)]);
        }

        if ((m = ExistsPattern().Match(part)).Success)
        {
            return new Requirement(ValidKey(m.Groups["key"].Value), Operator.Exists, []);
        }

        throw new FormatException($"unable to parse requirement: \"{part}\" is not key, !key, key=value, key==value, key!=value, key in (v1,v2) or key notin (v1,v2)");
    }

    private static string ValidKey(string key)
    {
        var slash = key.IndexOf('/');
        var name = slash < 0 ? key : key[(slash + 1)..];
        if (name.Length is 0 or > 63 || !LabelValue().IsMatch(name) || (slash >= 0 && (slash == 0 || slash > 253)))
        {
            throw new FormatException($"unable to parse requirement: invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
        }

        return key;
    }

    private static string ValidValue(string value)
    {
        if (value.Length > 63 || (value.Length > 0 && !LabelValue().IsMatch(value)))
        {
            throw new FormatException($"unable to parse requirement: invalid label value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
        }

        return value;
    }

    [GeneratedRegex(@"^!\s*(?<key>[^\s=!(),]+)$")]
    private static partial Regex NotExistsPattern();

    [GeneratedRegex(@"^(?<key>[^\s=!(),]+)\s+(?<op>in|notin)\s*\((?<values>[^()]*)\)$")]
    private static partial Regex SetPattern();

    [GeneratedRegex(@"^(?<key>[^\s=!(),]+)\s*(?<op>==|=|!=)\s*(?<value>[^\s=!(),]*)$")]
    private static partial Regex EqualityPattern();

    [GeneratedRegex(@"^(?<key>[^\s=!(),]+)$")]
    private static partial Regex ExistsPattern();

    [GeneratedRegex(@"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")]
    private static partial Regex LabelValue();

    private enum Operator
    {
        Equals,
        NotEquals,
        In,
        NotIn,
        Exists,
        DoesNotExist,
    }

    private sealed record Requirement(string Key, Operator Op, IReadOnlyList<string> Values)
    {
        public bool Matches(IReadOnlyDictionary<string, string> labels)
        {
            var has = labels.TryGetValue(Key, out var value);
            return Op switch
            {
                Operator.Equals => has && value == Values[0],
                Operator.NotEquals => !has || value != Values[0],
                Operator.In => has && Values.Contains(value),
                Operator.NotIn => !has || !Values.Contains(value),
                Operator.Exists => has,
                Operator.DoesNotExist => !has,
                _ => false,
            };
        }
    }
}
