namespace HybridServing.Contracts.Resources;

// Schema facts that live on the resource type itself, so that the CRD generator (OpenAPI v3) and the
// control plane's own validation read the same source of truth and cannot drift apart.

/// <summary>The field must be present (and, for strings, non-empty).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaRequiredAttribute : Attribute;

/// <summary>The value must be one of <see cref="Values"/>.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaEnumAttribute(params string[] values) : Attribute
{
    public IReadOnlyList<string> Values { get; } = values;
}

/// <summary>A string must match this ECMA-262 regular expression (as Kubernetes checks it).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaPatternAttribute(string pattern) : Attribute
{
    public string Pattern { get; } = pattern;
}

/// <summary>An integer must lie in [<see cref="Minimum"/>, <see cref="Maximum"/>].</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaRangeAttribute(long minimum, long maximum) : Attribute
{
    public long Minimum { get; } = minimum;
    public long Maximum { get; } = maximum;
}

/// <summary>String length bounds.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaLengthAttribute(int minLength, int maxLength) : Attribute
{
    public int MinLength { get; } = minLength;
    public int MaxLength { get; } = maxLength;
}

/// <summary>List length bounds; <see cref="MaxItems"/> 0 means unbounded.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaItemsAttribute(int minItems, int maxItems = 0) : Attribute
{
    public int MinItems { get; } = minItems;
    public int MaxItems { get; } = maxItems;
}

/// <summary>A one-line description for the CRD schema.</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Class)]
public sealed class SchemaDescriptionAttribute(string text) : Attribute
{
    public string Text { get; } = text;
}

/// <summary>A CEL rule on an object (<c>x-kubernetes-validations</c>), checked by the API server.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
public sealed class SchemaRuleAttribute(string rule, string message) : Attribute
{
    public string Rule { get; } = rule;
    public string Message { get; } = message;
}
