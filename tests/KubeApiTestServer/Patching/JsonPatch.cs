using System.Text.Json.Nodes;

namespace HybridServing.KubeApiTestServer.Patching;

/// <summary>RFC 6902 JSON patch (add, remove, replace, move, copy, test) over RFC 6901 pointers.</summary>
internal static class JsonPatch
{
    /// <summary>Applies the operations in order to a copy of <paramref name="document"/>.</summary>
    /// <exception cref="JsonPatchException">An operation is malformed, a path does not exist, or a test fails.</exception>
    public static JsonNode Apply(JsonNode document, JsonNode? patch)
    {
        if (patch is not JsonArray operations)
        {
            throw new JsonPatchException("a JSON patch must be an array of operations");
        }

        var root = document.DeepClone();
        for (var i = 0; i < operations.Count; i++)
        {
            if (operations[i] is not JsonObject op)
            {
                throw new JsonPatchException($"operation {i} is not an object");
            }

            var kind = ReadString(op, "op", i);
            var path = ReadString(op, "path", i);
            switch (kind)
            {
                case "add":
                    root = Add(root, path, RequireValue(op, i));
                    break;
                case "remove":
                    root = Remove(root, path, out _);
                    break;
                case "replace":
                    root = Remove(root, path, out _);
                    root = Add(root, path, RequireValue(op, i));
                    break;
                case "move":
                {
                    var from = ReadString(op, "from", i);
                    root = Remove(root, from, out var moved);
                    root = Add(root, path, moved);
                    break;
                }

                case "copy":
                {
                    var from = ReadString(op, "from", i);
                    root = Add(root, path, Resolve(root, from)?.DeepClone());
                    break;
                }

                case "test":
                {
                    var actual = Resolve(root, path);
                    if (!JsonNode.DeepEquals(actual, op["value"]))
                    {
                        throw new JsonPatchException($"testing value {path} failed");
                    }

                    break;
                }

                default:
                    throw new JsonPatchException($"unexpected kind of operation {i}: \"{kind}\"");
            }
        }

        return root;
    }

    private static string ReadString(JsonObject op, string member, int index)
    {
        if (op[member] is JsonValue v && v.TryGetValue<string>(out var s))
        {
            return s;
        }

        throw new JsonPatchException($"operation {index} is missing the string member \"{member}\"");
    }

    private static JsonNode? RequireValue(JsonObject op, int index) =>
        op.ContainsKey("value") ? op["value"]?.DeepClone() : throw new JsonPatchException($"operation {index} is missing \"value\"");

    private static List<string> Split(string pointer)
    {
        if (pointer.Length == 0)
        {
            return [];
        }

        if (pointer[0] != '/')
        {
            throw new JsonPatchException($"invalid JSON pointer \"{pointer}\": it must start with '/'");
        }

        return pointer[1..].Split('/').Select(t => t.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToList();
    }

    private static JsonNode? Resolve(JsonNode root, string pointer) => Resolve(root, Split(pointer), pointer);

    private static JsonNode? Resolve(JsonNode root, IEnumerable<string> tokens, string pointer)
    {
        JsonNode? current = root;
        foreach (var token in tokens)
        {
            current = current switch
            {
                JsonObject o when o.TryGetPropertyValue(token, out var child) => child,
                JsonArray a when int.TryParse(token, out var index) && index >= 0 && index < a.Count => a[index],
                _ => throw new JsonPatchException($"path \"{pointer}\" does not exist"),
            };
        }

        return current;
    }

    private static JsonNode Add(JsonNode root, string pointer, JsonNode? value)
    {
        var tokens = Split(pointer);
        if (tokens.Count == 0)
        {
            return value ?? throw new JsonPatchException("cannot replace the whole document with null");
        }

        var parent = Resolve(root, tokens.Take(tokens.Count - 1), pointer);
        var last = tokens[^1];
        switch (parent)
        {
            case JsonObject o:
                o[last] = value;
                break;
            case JsonArray a when last == "-":
                a.Add(value);
                break;
            case JsonArray a when int.TryParse(last, out var index) && index >= 0 && index <= a.Count:
                a.Insert(index, value);
                break;
            default:
                throw new JsonPatchException($"path \"{pointer}\" does not exist");
        }

        return root;
    }

    private static JsonNode Remove(JsonNode root, string pointer, out JsonNode? removed)
    {
        var tokens = Split(pointer);
        if (tokens.Count == 0)
        {
            throw new JsonPatchException("cannot remove the whole document");
        }

        var parent = Resolve(root, tokens.Take(tokens.Count - 1), pointer);
        var last = tokens[^1];
        switch (parent)
        {
            case JsonObject o when o.TryGetPropertyValue(last, out var value):
                o.Remove(last);
                removed = value;
                break;
            case JsonArray a when int.TryParse(last, out var index) && index >= 0 && index < a.Count:
                removed = a[index];
                a.RemoveAt(index);
                break;
            default:
                throw new JsonPatchException($"path \"{pointer}\" does not exist");
        }

        return root;
    }
}

internal sealed class JsonPatchException(string message) : Exception(message);
