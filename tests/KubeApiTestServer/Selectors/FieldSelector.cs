using HybridServing.KubeApiTestServer.Resources;

namespace HybridServing.KubeApiTestServer.Selectors;

/// <summary>
/// The <c>fieldSelector</c> query syntax (<c>f=v</c>, <c>f==v</c>, <c>f!=v</c>, comma-joined) over
/// <c>metadata.name</c>, <c>metadata.namespace</c> and the resource's <see cref="ApiResource.SelectableFields"/>;
/// other fields answer 400 as on a real server.
/// </summary>
internal sealed class FieldSelector
{
    public static readonly FieldSelector Everything = new([]);

    private readonly IReadOnlyList<(string Field, bool Equal, string Value)> _terms;

    private FieldSelector(IReadOnlyList<(string Field, bool Equal, string Value)> terms) => _terms = terms;

    /// <summary>The fields a selector may name for every resource.</summary>
    public static readonly IReadOnlyList<string> CommonFields = ["metadata.name", "metadata.namespace"];

    /// <exception cref="FormatException">The selector does not parse or names an unsupported field.</exception>
    public static FieldSelector Parse(string? text, ApiResource resource)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return Everything;
        }

        var terms = new List<(string, bool, string)>();
        foreach (var raw in text.Split(','))
        {
            var part = raw.Trim();
            string field, value;
            bool equal;
            int at;
            if ((at = part.IndexOf("!=", StringComparison.Ordinal)) > 0)
            {
                (field, value, equal) = (part[..at], part[(at + 2)..], false);
            }
            else if ((at = part.IndexOf("==", StringComparison.Ordinal)) > 0)
            {
                (field, value, equal) = (part[..at], part[(at + 2)..], true);
            }
            else if ((at = part.IndexOf('=')) > 0)
            {
                (field, value, equal) = (part[..at], part[(at + 1)..], true);
            }
            else
            {
                throw new FormatException($"invalid selector: '{text}'; can't understand '{part}'");
            }

            field = field.Trim();
            if (!CommonFields.Contains(field) && !resource.SelectableFields.Contains(field))
            {
                throw new FormatException($"field label not supported: {field}");
            }

            terms.Add((field, equal, value.Trim()));
        }

        return new FieldSelector(terms);
    }

    /// <summary>The fields this resource makes selectable; what <see cref="Matches"/> reads.</summary>
    public static IEnumerable<string> SelectableFields(ApiResource resource) => CommonFields.Concat(resource.SelectableFields);

    public bool Matches(IReadOnlyDictionary<string, string> fields) =>
        _terms.All(t => (fields.TryGetValue(t.Field, out var v) ? v : "") == t.Value == t.Equal);
}
