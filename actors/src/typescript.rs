//! CODE steps in TypeScript, as Activepieces stores them: the types are stripped with oxc (a
//! maintained TypeScript parser and transformer) before the JavaScript engine runs the code.
//! Plain JavaScript passes through unchanged in meaning. Results are cached by source.

use dashmap::DashMap;
use std::sync::Arc;

/// Why a code step's source could not be turned into JavaScript.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the code does not parse as TypeScript: {0}")]
pub struct NotTypeScript(pub String);

/// Sources already stripped, by source text.
#[derive(Default)]
pub struct Stripped(DashMap<Arc<str>, Result<Arc<str>, NotTypeScript>>);

impl Stripped {
    /// `source` without its TypeScript (types, interfaces, `as`, generics, enums compiled).
    pub fn javascript(&self, source: &str) -> Result<Arc<str>, NotTypeScript> {
        if let Some(done) = self.0.get(source) {
            return done.clone();
        }
        let result = strip(source).map(Arc::from);
        if self.0.len() < 10_000 {
            self.0.insert(Arc::from(source), result.clone());
        }
        result
    }
}

/// Strips the TypeScript of `source`. A panic inside the transformer is an error here, not
/// a crash of the caller.
pub fn strip(source: &str) -> Result<String, NotTypeScript> {
    std::panic::catch_unwind(|| transform(source)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(NotTypeScript(format!("the TypeScript transformer failed: {why}")))
    })
}

fn transform(source: &str) -> Result<String, NotTypeScript> {
    use oxc_allocator::Allocator;
    use oxc_codegen::Codegen;
    use oxc_parser::Parser;
    use oxc_semantic::SemanticBuilder;
    use oxc_span::SourceType;
    use oxc_transformer::{TransformOptions, Transformer};
    let allocator = Allocator::default();
    let source_type = SourceType::ts();
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if let Some(e) = parsed.diagnostics.first() {
        return Err(NotTypeScript(e.to_string()));
    }
    let mut program = parsed.program;
    let scoping = SemanticBuilder::new().with_enum_eval(true).build(&program).semantic.into_scoping();
    let options = TransformOptions::default();
    let path = std::path::Path::new("code.ts");
    let transformed = Transformer::new(&allocator, path, &options).build_with_scoping(scoping, &mut program);
    if let Some(e) = transformed.diagnostics.first() {
        return Err(NotTypeScript(e.to_string()));
    }
    Ok(Codegen::new().build(&program).code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_go_and_javascript_stays() {
        let ts = "interface In { x: number }\nexport const code = async (inputs: In): Promise<number> => {\n  const n = inputs.x as number;\n  return n * 2;\n};\n";
        let js = strip(ts).unwrap();
        assert!(!js.contains("interface") && !js.contains(": In") && !js.contains(" as number"), "{js}");
        assert!(js.contains("export const code") && js.contains("return n * 2"), "{js}");
        let plain = "export const code = async (inputs) => { return inputs.a + 1; };";
        assert!(strip(plain).unwrap().contains("return inputs.a + 1"));
        let err = strip("export const code = async (inputs: => {").unwrap_err();
        assert!(err.to_string().contains("does not parse"), "{err}");
        let cache = Stripped::default();
        assert_eq!(cache.javascript(ts).unwrap(), cache.javascript(ts).unwrap());
    }
}
