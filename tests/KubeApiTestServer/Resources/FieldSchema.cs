using System.Collections;
using System.Collections.Concurrent;
using System.Reflection;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace HybridServing.KubeApiTestServer.Resources;

/// <summary>
/// Finds fields an object has that its kind does not declare, for <c>fieldValidation=Strict|Warn</c>
/// (kubectl sends Strict by default): built-in kinds are checked against the KubernetesClient model
/// types (the Kubernetes API's fields), custom resources against the CRD's <c>openAPIV3Schema</c>
/// when they were registered from a CRD. Values are not validated, only field names.
/// </summary>
internal static class FieldSchema
{
    private static readonly Lazy<IReadOnlyDictionary<string, Type>> BuiltInTypes = new(() =>
        typeof(V1Pod).Assembly.GetTypes()
            .Select(t => (Type: t, Entity: t.GetCustomAttribute<KubernetesEntityAttribute>()))
            .Where(p => p.Entity is not null && typeof(IKubernetesObject).IsAssignableFrom(p.Type) && !p.Type.Name.EndsWith("List", StringComparison.Ordinal))
            .GroupBy(p => Key(p.Entity!.Group, p.Entity.ApiVersion, p.Entity.Kind))
            .ToDictionary(g => g.Key, g => g.First().Type, StringComparer.Ordinal));

    private static readonly ConcurrentDictionary<Type, IReadOnlyDictionary<string, Type>> Properties = new();

    /// <summary>The paths (<c>spec.template.spec.containers[0].imagee</c>) of undeclared fields; empty when the kind has no known schema.</summary>
    public static IReadOnlyList<string> UnknownFields(ApiResource resource, JsonObject obj)
    {
        var unknown = new List<string>();
        if (resource.Schema is { } schema)
        {
            CheckSchema(schema, obj, "", unknown);
        }
        else if (!resource.IsCustom && BuiltInTypes.Value.TryGetValue(Key(resource.Group, resource.Version, resource.Kind), out var type))
        {
            CheckType(type, obj, "", unknown);
        }

        return unknown;
    }

    private static void CheckType(Type type, JsonNode? node, string path, List<string> unknown)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        switch (node)
        {
            case JsonObject obj when DictionaryValueType(type) is { } valueType:
                foreach (var (key, value) in obj)
                {
                    CheckType(valueType, value, Join(path, key), unknown);
                }

                break;
            case JsonObject obj when type.Namespace == "k8s.Models" && type.IsClass:
                var properties = Properties.GetOrAdd(type, t => t.GetProperties()
                    .Select(p => (Name: p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name, p.PropertyType))
                    .Where(p => p.Name is not null)
                    .ToDictionary(p => p.Name!, p => p.PropertyType, StringComparer.Ordinal));
                if (properties.Count == 0)
                {
                    // IntOrString, ResourceQuantity and the like: not an object with fields.
                    return;
                }

                foreach (var (key, value) in obj)
                {
                    if (properties.TryGetValue(key, out var propertyType))
                    {
                        CheckType(propertyType, value, Join(path, key), unknown);
                    }
                    else
                    {
                        unknown.Add(Join(path, key));
                    }
                }

                break;
            case JsonArray array when ElementType(type) is { } elementType:
                for (var i = 0; i < array.Count; i++)
                {
                    CheckType(elementType, array[i], $"{path}[{i}]", unknown);
                }

                break;
        }
    }

    private static void CheckSchema(JsonObject schema, JsonNode? node, string path, List<string> unknown)
    {
        if (schema["x-kubernetes-preserve-unknown-fields"] is JsonValue preserve && preserve.GetValue<bool>())
        {
            return;
        }

        switch (node)
        {
            case JsonObject obj when schema["properties"] is JsonObject properties:
                foreach (var (key, value) in obj)
                {
                    if (properties[key] is JsonObject property)
                    {
                        CheckSchema(property, value, Join(path, key), unknown);
                    }
                    else if (!(path.Length == 0 && key is "apiVersion" or "kind" or "metadata"))
                    {
                        unknown.Add(Join(path, key));
                    }
                }

                break;
            case JsonObject obj when schema["additionalProperties"] is JsonObject values:
                foreach (var (key, value) in obj)
                {
                    CheckSchema(values, value, Join(path, key), unknown);
                }

                break;
            case JsonArray array when schema["items"] is JsonObject items:
                for (var i = 0; i < array.Count; i++)
                {
                    CheckSchema(items, array[i], $"{path}[{i}]", unknown);
                }

                break;
        }
    }

    private static Type? DictionaryValueType(Type type) =>
        type.IsGenericType && type.GetGenericArguments() is [var key, var value] && key == typeof(string) ? value : null;

    private static Type? ElementType(Type type) =>
        type.IsArray ? type.GetElementType()
        : type.IsGenericType && type.GetGenericArguments() is [var e] && typeof(IEnumerable).IsAssignableFrom(type) ? e
        : null;

    private static string Join(string path, string key) => path.Length == 0 ? key : path + "." + key;

    private static string Key(string group, string version, string kind) => group + "/" + version + "/" + kind;
}
