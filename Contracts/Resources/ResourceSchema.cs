using System.Collections;
using System.Reflection;
using System.Text.Json.Serialization;

namespace HybridServing.Contracts.Resources;

/// <summary>
/// The JSON shape of a resource type, read by reflection from its <see cref="JsonPropertyNameAttribute"/>s.
/// Shared by the CRD generator, the strict manifest reader (unknown fields) and the validator, so the
/// three agree on what the schema is.
/// </summary>
public static class ResourceSchema
{
    public static IReadOnlyList<(string JsonName, PropertyInfo Property)> Properties(Type type) =>
        [.. type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (Name: p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name, Property: p))
            .Where(p => p.Name is not null && p.Property.GetCustomAttribute<JsonIgnoreAttribute>() is null)
            .Select(p => (p.Name!, p.Property))];

    /// <summary>The element type when <paramref name="type"/> is a list (not a string, not a dictionary).</summary>
    public static Type? ListElement(Type type)
    {
        if (type == typeof(string) || DictionaryValue(type) is not null) return null;
        if (type.IsArray) return type.GetElementType();
        var list = type.IsGenericType && type.GetGenericTypeDefinition() is var d
                   && (d == typeof(IList<>) || d == typeof(List<>) || d == typeof(IReadOnlyList<>) || d == typeof(IEnumerable<>) || d == typeof(ICollection<>))
            ? type : type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IList<>));
        return list?.GetGenericArguments()[0];
    }

    /// <summary>The value type when <paramref name="type"/> is a string-keyed dictionary.</summary>
    public static Type? DictionaryValue(Type type)
    {
        var dict = type.IsGenericType && type.GetGenericTypeDefinition() is var d && (d == typeof(IDictionary<,>) || d == typeof(Dictionary<,>) || d == typeof(IReadOnlyDictionary<,>))
            ? type : type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>));
        return dict is not null && dict.GetGenericArguments()[0] == typeof(string) ? dict.GetGenericArguments()[1] : null;
    }

    public static bool IsScalar(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        return t.IsPrimitive || t == typeof(string) || t == typeof(decimal) || t == typeof(DateTime) || t == typeof(DateTimeOffset) || t.IsEnum;
    }

    /// <summary>Objects that are free-form (any JSON): treated as such by the walker.</summary>
    public static bool IsFreeForm(Type type) => type == typeof(object) || typeof(IEnumerable).IsAssignableFrom(type) && ListElement(type) is null && DictionaryValue(type) is null && type != typeof(string);
}
