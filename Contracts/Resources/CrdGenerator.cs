using System.Reflection;
using HybridServing.Contracts.Resources;
using k8s;
using k8s.Models;

namespace HybridServing.Contracts.Resources;

/// <summary>
/// Generates the LoraAdapter CustomResourceDefinition from the C# type (the source of truth): the
/// OpenAPI v3 schema comes from the JSON property names and the schema attributes (required, enum,
/// pattern, range, length, items, CEL rules), plus printer columns, the status subresource and the
/// short name. A test compares the committed YAML with this output.
/// </summary>
public static class CrdGenerator
{
    public const string FileName = LoraAdapter.Plural + "." + LoraAdapter.Group + ".yaml";

    public static string GenerateYaml()
    {
        var crd = new V1CustomResourceDefinition
        {
            ApiVersion = "apiextensions.k8s.io/v1",
            Kind = "CustomResourceDefinition",
            Metadata = new V1ObjectMeta { Name = $"{LoraAdapter.Plural}.{LoraAdapter.Group}" },
            Spec = new V1CustomResourceDefinitionSpec
            {
                Group = LoraAdapter.Group,
                Scope = "Namespaced",
                Names = new V1CustomResourceDefinitionNames
                {
                    Kind = LoraAdapter.KindName,
                    ListKind = LoraAdapter.KindName + "List",
                    Plural = LoraAdapter.Plural,
                    Singular = LoraAdapter.KindName.ToLowerInvariant(),
                    ShortNames = [LoraAdapter.ShortName],
                    Categories = ["hybridserving"],
                },
                Versions =
                [
                    new V1CustomResourceDefinitionVersion
                    {
                        Name = LoraAdapter.Version,
                        Served = true,
                        Storage = true,
                        Subresources = new V1CustomResourceSubresources { Status = new Dictionary<string, object>() },
                        AdditionalPrinterColumns =
                        [
                            Column("Base Model", ".spec.baseModel"),
                            Column("Source", ".spec.adapterSource.type"),
                            Column("Phase", ".status.phase"),
                            Column("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
                            Column("Reason", ".status.conditions[?(@.type==\"Ready\")].reason", priority: 1),
                            Column("Age", ".metadata.creationTimestamp", "date"),
                        ],
                        Schema = new V1CustomResourceValidation
                        {
                            OpenAPIV3Schema = new V1JSONSchemaProps
                            {
                                Type = "object",
                                Description = "A set of LoRA adapters for one base model, from one source, with placement wishes.",
                                Required = ["spec"],
                                Properties = new Dictionary<string, V1JSONSchemaProps>
                                {
                                    ["apiVersion"] = new() { Type = "string" },
                                    ["kind"] = new() { Type = "string" },
                                    ["metadata"] = new() { Type = "object" },
                                    ["spec"] = ForType(typeof(LoraAdapterSpec)),
                                    ["status"] = ForType(typeof(LoraAdapterStatus)),
                                },
                            },
                        },
                    },
                ],
            },
        };
        return "# Generated from HybridServing.Contracts.Resources.LoraAdapter by\n"
               + "#   dotnet run --project ControlPlane -- generate-crd k8s/crds\n"
               + "# Do not edit by hand: a test fails when this file differs from the generator's output.\n"
               + KubernetesYaml.Serialize(crd).ReplaceLineEndings("\n");
    }

    private static V1CustomResourceColumnDefinition Column(string name, string path, string type = "string", int priority = 0) =>
        new() { Name = name, JsonPath = path, Type = type, Priority = priority == 0 ? null : priority };

    private static V1JSONSchemaProps ForType(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        if (t == typeof(string)) return new() { Type = "string" };
        if (t == typeof(bool)) return new() { Type = "boolean" };
        if (t == typeof(int)) return new() { Type = "integer", Format = "int32" };
        if (t == typeof(long)) return new() { Type = "integer", Format = "int64" };
        if (t == typeof(double) || t == typeof(float)) return new() { Type = "number" };
        if (t == typeof(DateTime) || t == typeof(DateTimeOffset)) return new() { Type = "string", Format = "date-time" };
        if (ResourceSchema.DictionaryValue(t) is { } value) return new() { Type = "object", AdditionalProperties = ForType(value) };
        if (ResourceSchema.ListElement(t) is { } element) return new() { Type = "array", Items = ForType(element) };
        if (t == typeof(V1ObjectMeta)) return new() { Type = "object" };

        var schema = new V1JSONSchemaProps { Type = "object", Properties = new Dictionary<string, V1JSONSchemaProps>() };
        var required = new List<string>();
        foreach (var (name, prop) in ResourceSchema.Properties(t))
        {
            var p = ForType(prop.PropertyType);
            Apply(prop, p);
            schema.Properties[name] = p;
            if (prop.GetCustomAttribute<SchemaRequiredAttribute>() is not null) required.Add(name);
        }
        if (required.Count > 0) schema.Required = required;
        ApiMachinery(t, schema);
        if (t.GetCustomAttribute<SchemaDescriptionAttribute>() is { } d) schema.Description = d.Text;
        var rules = t.GetCustomAttributes<SchemaRuleAttribute>().ToList();
        if (rules.Count > 0) schema.XKubernetesValidations = [.. rules.Select(r => new V1ValidationRule { Rule = r.Rule, Message = r.Message })];
        return schema;
    }

    /// <summary>Kubernetes' own types carry no schema attributes; say what the API server's own schemas say about them.</summary>
    private static void ApiMachinery(Type t, V1JSONSchemaProps schema)
    {
        if (t == typeof(V1LabelSelectorRequirement))
        {
            schema.Required = ["key", "operator"];
            schema.Properties["operator"].EnumProperty = ["In", "NotIn", "Exists", "DoesNotExist"];
        }
        else if (t == typeof(V1Condition))
        {
            schema.Required = ["type", "status", "lastTransitionTime", "reason", "message"];
            schema.Properties["status"].EnumProperty = ["True", "False", "Unknown"];
            schema.Properties["reason"].Pattern = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";
            schema.Properties["reason"].MaxLength = 1024;
            schema.Properties["message"].MaxLength = 32768;
        }
    }

    private static void Apply(PropertyInfo prop, V1JSONSchemaProps p)
    {
        // String constraints on a list of strings constrain its items.
        var target = p.Type == "array" && p.Items is V1JSONSchemaProps { Type: "string" } items ? items : p;
        if (prop.GetCustomAttribute<SchemaEnumAttribute>() is { } e) target.EnumProperty = [.. e.Values.Cast<object>()];
        if (prop.GetCustomAttribute<SchemaPatternAttribute>() is { } pattern) target.Pattern = pattern.Pattern;
        if (prop.GetCustomAttribute<SchemaLengthAttribute>() is { } length)
        {
            target.MinLength = length.MinLength;
            target.MaxLength = length.MaxLength;
        }
        if (prop.GetCustomAttribute<SchemaRangeAttribute>() is { } range)
        {
            p.Minimum = range.Minimum;
            p.Maximum = range.Maximum;
        }
        if (prop.GetCustomAttribute<SchemaItemsAttribute>() is { } bounds)
        {
            if (bounds.MinItems > 0) p.MinItems = bounds.MinItems;
            if (bounds.MaxItems > 0) p.MaxItems = bounds.MaxItems;
        }
        if (prop.GetCustomAttribute<SchemaDescriptionAttribute>() is { } d) p.Description = d.Text;
        if (prop.GetCustomAttribute<SchemaRequiredAttribute>() is not null && p.Type == "string" && target.MinLength is null) target.MinLength = 1;
        // Conditions are a map keyed by type (server-side apply merges them per type).
        if (ResourceSchema.ListElement(prop.PropertyType) == typeof(V1Condition))
        {
            p.XKubernetesListType = "map";
            p.XKubernetesListMapKeys = ["type"];
        }
    }

    /// <summary><c>generate-crd [folder]</c>: writes <see cref="FileName"/> into the folder (default <c>k8s/crds</c>).</summary>
    public static int RunCommand(string[] args)
    {
        if (args.Length > 1 || args is [var a] && a.StartsWith('-'))
        {
            Console.Error.WriteLine("usage: generate-crd [folder]   (default folder: k8s/crds)");
            return 2;
        }
        var folder = args.Length == 1 ? args[0] : Path.Combine("k8s", "crds");
        // `dotnet run --project ControlPlane` starts in the project folder: relative paths mean the repository root.
        if (!Path.IsPathRooted(folder) && FindRepositoryRoot(Directory.GetCurrentDirectory()) is { } root) folder = Path.Combine(root, folder);
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, FileName);
        File.WriteAllText(path, GenerateYaml());
        Console.WriteLine($"wrote {Path.GetFullPath(path)}");
        return 0;
    }

    /// <summary>The nearest folder at or above <paramref name="start"/> holding HybridServing.sln.</summary>
    public static string? FindRepositoryRoot(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "HybridServing.sln"))) return dir.FullName;
        return null;
    }
}
