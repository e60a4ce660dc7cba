using System.Globalization;
using System.Text.Json.Nodes;
using HybridServing.KubeApiTestServer.Resources;

namespace HybridServing.KubeApiTestServer.Http;

/// <summary>
/// The <c>meta.k8s.io/v1</c> <c>Table</c> a server answers when a client asks for
/// <c>Accept: application/json;as=Table;g=meta.k8s.io;v=v1</c> (what <c>kubectl get</c> does): Name,
/// then the resource's printer columns (a CRD's <c>additionalPrinterColumns</c>), or Age when it has
/// none; ages and <c>date</c> columns formatted as kubectl shows them (<c>45s</c>, <c>3m20s</c>, <c>5h</c>, <c>2d3h</c>).
/// </summary>
internal static class TableRenderer
{
    /// <summary>True when the Accept header asks for a Table before any plain JSON.</summary>
    public static bool Wanted(string? accept) =>
        accept is not null && accept.Split(',').Select(a => a.Replace(" ", "", StringComparison.Ordinal)).TakeWhile(a => a.Contains("as=Table", StringComparison.Ordinal)).Any(a =>
            a.Contains("g=meta.k8s.io", StringComparison.Ordinal) && a.Contains("v=v1", StringComparison.Ordinal) && !a.Contains("v=v1beta1", StringComparison.Ordinal));

    /// <param name="includeObject"><c>None</c>, <c>Metadata</c> (the default: PartialObjectMetadata) or <c>Object</c>.</param>
    public static JsonObject Render(ApiResource resource, IEnumerable<JsonObject> objects, string? resourceVersion, string? continueToken, string? includeObject, DateTimeOffset now)
    {
        var columns = Columns(resource);
        var rows = new JsonArray();
        foreach (var obj in objects)
        {
            var cells = new JsonArray { (JsonNode?)Text(obj["metadata"]?["name"]) };
            foreach (var column in columns.Skip(1))
            {
                cells.Add(Cell(column, Evaluate(obj, column.JsonPath), now));
            }

            var row = new JsonObject { ["cells"] = cells };
            switch (includeObject)
            {
                case null or "" or "Metadata":
                    row["object"] = new JsonObject
                    {
                        ["kind"] = "PartialObjectMetadata",
                        ["apiVersion"] = "meta.k8s.io/v1",
                        ["metadata"] = obj["metadata"]?.DeepClone(),
                    };
                    break;
                case "Object":
                    row["object"] = obj.DeepClone();
                    break;
                case "None":
                    break;
                default:
                    throw ApiError.BadRequest($"Invalid value: \"{includeObject}\": includeObject: supported values: \"Metadata\", \"None\", \"Object\"");
            }

            rows.Add(row);
        }

        var metadata = new JsonObject();
        if (resourceVersion is not null)
        {
            metadata["resourceVersion"] = resourceVersion;
        }

        if (continueToken is not null)
        {
            metadata["continue"] = continueToken;
        }

        return new JsonObject
        {
            ["kind"] = "Table",
            ["apiVersion"] = "meta.k8s.io/v1",
            ["metadata"] = metadata,
            ["columnDefinitions"] = new JsonArray(columns.Select(c => (JsonNode)new JsonObject
            {
                ["name"] = c.Name,
                ["type"] = c.Type == "date" ? "string" : c.Type,
                ["format"] = c.Format,
                ["description"] = c.Description,
                ["priority"] = c.Priority,
            }).ToArray()),
            ["rows"] = rows,
        };
    }

    private static IReadOnlyList<PrinterColumn> Columns(ApiResource resource)
    {
        var name = new PrinterColumn("Name", "string", ".metadata.name") { Format = "name", Description = "Name must be unique within a namespace." };
        var rest = resource.PrinterColumns.Count > 0
            ? resource.PrinterColumns
            : [new PrinterColumn("Age", "date", ".metadata.creationTimestamp") { Description = "CreationTimestamp is a timestamp representing the server time when this object was created." }];
        return [name, .. rest];
    }

    private static JsonNode? Cell(PrinterColumn column, JsonNode? value, DateTimeOffset now)
    {
        if (value is null)
        {
            // A missing value prints as <none>, as the real table convertor leaves it.
            return null;
        }

        if (column.Type == "date")
        {
            return Text(value) is { } text && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when)
                ? HumanDuration(now - when)
                : "<unknown>";
        }

        return value is JsonValue ? value.DeepClone() : value.ToJsonString();
    }

    /// <summary>How kubectl shows an age (Kubernetes' duration.HumanDuration).</summary>
    public static string HumanDuration(TimeSpan d)
    {
        var seconds = (long)Math.Floor(d.TotalSeconds);
        if (seconds < -1)
        {
            return "<invalid>";
        }

        if (seconds < 0)
        {
            return "0s";
        }

        if (seconds < 120)
        {
            return $"{seconds}s";
        }

        var minutes = seconds / 60;
        if (minutes < 10)
        {
            return seconds % 60 == 0 ? $"{minutes}m" : $"{minutes}m{seconds % 60}s";
        }

        if (minutes < 180)
        {
            return $"{minutes}m";
        }

        var hours = minutes / 60;
        if (hours < 8)
        {
            return minutes % 60 == 0 ? $"{hours}h" : $"{hours}h{minutes % 60}m";
        }

        if (hours < 48)
        {
            return $"{hours}h";
        }

        if (hours < 24 * 8)
        {
            return hours % 24 == 0 ? $"{hours / 24}d" : $"{hours / 24}d{hours % 24}h";
        }

        if (hours < 24 * 365 * 2)
        {
            return $"{hours / 24}d";
        }

        var days = hours / 24;
        if (hours < 24 * 365 * 8)
        {
            return days % 365 == 0 ? $"{days / 365}y" : $"{days / 365}y{days % 365}d";
        }

        return $"{days / 365}y";
    }

    /// <summary>
    /// The JSONPath subset printer columns use: <c>.a.b</c>, <c>[n]</c>, <c>[*]</c> and
    /// <c>[?(@.field=="value")]</c>; the first match, or null.
    /// </summary>
    public static JsonNode? Evaluate(JsonNode? root, string path)
    {
        var current = new List<JsonNode?> { root };
        var i = path.StartsWith('$') ? 1 : 0;
        while (i < path.Length && current.Count > 0)
        {
            if (path[i] == '.')
            {
                var end = path.IndexOfAny(['.', '['], i + 1);
                end = end < 0 ? path.Length : end;
                var field = path[(i + 1)..end];
                current = current.Select(n => n is JsonObject o ? o[field] : null).Where(n => n is not null).ToList();
                i = end;
            }
            else if (path[i] == '[')
            {
                var end = path.IndexOf(']', i);
                if (end < 0)
                {
                    throw new FormatException($"unclosed [ in JSONPath {path}");
                }

                var selector = path[(i + 1)..end];
                current = current.OfType<JsonArray>().SelectMany(a => Select(a, selector, path)).ToList();
                i = end + 1;
            }
            else
            {
                throw new FormatException($"unexpected '{path[i]}' at {i} in JSONPath {path}");
            }
        }

        return current.FirstOrDefault();
    }

    private static IEnumerable<JsonNode?> Select(JsonArray array, string selector, string path)
    {
        if (selector == "*")
        {
            return array;
        }

        if (int.TryParse(selector, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var index))
        {
            index = index < 0 ? array.Count + index : index;
            return index >= 0 && index < array.Count ? [array[index]] : [];
        }

        if (selector.StartsWith("?(@.", StringComparison.Ordinal) && selector.EndsWith(')') && selector.IndexOf("==", StringComparison.Ordinal) is var eq and > 0)
        {
            var field = selector[4..eq];
            var expected = selector[(eq + 2)..^1].Trim().Trim('"', '\'');
            return array.Where(e => e is JsonObject o && (o[field] is JsonValue v ? v.ToString() : null) == expected);
        }

        throw new FormatException($"unsupported JSONPath selector [{selector}] in {path}");
    }

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}
