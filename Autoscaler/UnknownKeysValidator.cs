using System.ComponentModel;
using System.Reflection;
using Microsoft.Extensions.Options;

namespace HybridServing.Autoscaler;

/// <summary>
/// Refuses, at start, a key under <c>Autoscaler</c> that binds to nothing (a typo such as <c>StableWindw</c>
/// would otherwise be ignored and the default used) and a value that does not parse as its type (the binder
/// drops a pool whose value fails to convert, silently), naming the full path.
/// </summary>
internal sealed class UnknownKeysValidator(IConfiguration configuration) : IValidateOptions<AutoscalerOptions>
{
    public ValidateOptionsResult Validate(string? name, AutoscalerOptions options)
    {
        var errors = new List<string>();
        Properties(configuration.GetSection(AutoscalerOptions.Section), typeof(AutoscalerOptions), errors);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Properties(IConfigurationSection section, Type type, List<string> errors)
    {
        foreach (var child in section.GetChildren())
        {
            var property = type.GetProperty(child.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null) errors.Add($"{child.Path} is not an Autoscaler configuration key (see Autoscaler/README.md).");
            else Value(child, property.PropertyType, errors);
        }
    }

    private static void Value(IConfigurationSection section, Type type, List<string> errors)
    {
        if (Nullable.GetUnderlyingType(type) is { } underlying) type = underlying;
        if (type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(TimeSpan) || type == typeof(Uri))
        {
            if (section.Value is not { Length: > 0 } text || type == typeof(string)) return;
            try
            {
                if (TypeDescriptor.GetConverter(type).ConvertFromInvariantString(text) is Uri { IsAbsoluteUri: false }) throw new FormatException();
            }
            catch (Exception e) when (e is FormatException or NotSupportedException or ArgumentException or OverflowException || e.InnerException is FormatException or OverflowException)
            {
                errors.Add($"{section.Path}: '{text}' is not {Describe(type)}.");
            }
            return;
        }
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            foreach (var entry in section.GetChildren()) Value(entry, type.GetGenericArguments()[1], errors);
            return;
        }
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>))
        {
            foreach (var item in section.GetChildren()) Value(item, type.GetGenericArguments()[0], errors);
            return;
        }
        Properties(section, type, errors);
    }

    private static string Describe(Type type) =>
        type == typeof(TimeSpan) ? "a duration (hh:mm:ss, e.g. 00:00:30)"
        : type == typeof(Uri) ? "an absolute URL"
        : type == typeof(bool) ? "true or false"
        : type.IsEnum ? $"one of {string.Join(", ", Enum.GetNames(type))}"
        : type == typeof(int) || type == typeof(long) ? "a whole number"
        : "a number";
}
