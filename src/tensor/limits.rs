//! Per-request limits (inputs, outputs, shape rank, elements per tensor, BYTES elements per request), checked by
//! every decoder before it allocates for what a request declares.

use crate::error::{shape_text, short, Error};

/// The per-request limits, built once from the settings (`Limits::from(&settings)`, in [`crate::config`]) and
/// handed to the decoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most inputs, and most requested outputs, in one request (`max_tensors_per_request`).
    pub max_tensors: usize,
    /// Most elements in one tensor, the product of its shape (`max_tensor_elements`).
    pub max_elements: usize,
    /// Most BYTES elements in one request, over all its inputs (`max_bytes_elements`).
    pub max_bytes_elements: usize,
    /// Largest shape rank (`max_shape_rank`).
    pub max_rank: usize,
    /// Largest image decoded or resized to, in pixels (`max_image_pixels`).
    pub max_image_pixels: u64,
}

impl Limits {
    /// Refuses a request with more than `max_tensors` inputs (`what` = "inputs") or requested outputs. `count`
    /// may be where a count that stops at the first one over the limit stopped, hence "more than".
    pub fn check_tensor_count(&self, what: &str, count: usize) -> Result<(), Error> {
        if count > self.max_tensors {
            return Err(Error::InvalidInput(format!(
                "the request has more than {} {what}, the limit (setting max_tensors_per_request)",
                self.max_tensors
            )));
        }
        Ok(())
    }

    /// Refuses a shape of more than `max_rank` dimensions (before the shape is converted or printed).
    pub fn check_rank(&self, name: &str, rank: usize) -> Result<(), Error> {
        if rank > self.max_rank {
            return Err(Error::InvalidInput(format!(
                "input '{}' has a shape of {rank} dimensions, over the limit of {} (setting max_shape_rank)",
                short(name),
                self.max_rank
            )));
        }
        Ok(())
    }

    /// Refuses a tensor whose shape holds more than `max_elements` elements (before its data is read).
    pub fn check_elements(&self, name: &str, shape: &[usize], count: usize) -> Result<(), Error> {
        if count > self.max_elements {
            return Err(Error::InvalidInput(format!(
                "input '{}' shape {} has {count} elements, over the limit of {} (setting max_tensor_elements)",
                short(name),
                shape_text(shape),
                self.max_elements
            )));
        }
        Ok(())
    }

    /// A counter of the request's BYTES elements against `max_bytes_elements`.
    pub fn bytes_budget(&self) -> BytesBudget {
        BytesBudget {
            left: self.max_bytes_elements,
            limit: self.max_bytes_elements,
        }
    }
}

/// The BYTES elements a request may still declare; each BYTES input takes its element count (known from its
/// shape) before any element is decoded.
#[derive(Debug, Clone)]
pub struct BytesBudget {
    left: usize,
    limit: usize,
}

impl BytesBudget {
    /// Takes `count` elements for input `name`, or refuses the request.
    pub fn take(&mut self, name: &str, count: usize) -> Result<(), Error> {
        self.left = self.left.checked_sub(count).ok_or_else(|| {
            Error::InvalidInput(format!(
                "input '{}' brings the request's BYTES elements over the limit of {} (setting max_bytes_elements)",
                short(name),
                self.limit
            ))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_tensors: 2,
            max_elements: 100,
            max_bytes_elements: 10,
            max_rank: 3,
            max_image_pixels: 1000,
        }
    }

    #[test]
    fn tensor_count_names_the_setting() {
        assert!(limits().check_tensor_count("inputs", 2).is_ok());
        let e = limits()
            .check_tensor_count("inputs", 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("more than 2 inputs") && e.contains("max_tensors_per_request"),
            "{e}"
        );
    }

    #[test]
    fn rank_and_elements_name_the_input_and_setting() {
        assert!(limits().check_rank("x", 3).is_ok());
        let e = limits().check_rank("x", 4).unwrap_err().to_string();
        assert!(e.contains("'x'") && e.contains("max_shape_rank"), "{e}");
        assert!(limits().check_elements("x", &[10, 10], 100).is_ok());
        let e = limits()
            .check_elements("x", &[10, 11], 110)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'x'") && e.contains("[10, 11]") && e.contains("max_tensor_elements"),
            "{e}"
        );
    }

    #[test]
    fn bytes_budget_counts_over_the_request() {
        let mut budget = limits().bytes_budget();
        budget.take("a", 6).unwrap();
        budget.take("b", 4).unwrap();
        let e = budget.take("c", 1).unwrap_err().to_string();
        assert!(e.contains("'c'") && e.contains("max_bytes_elements"), "{e}");
    }

    #[test]
    fn long_names_are_cut_in_messages() {
        let name = "n".repeat(100_000);
        let e = limits().check_rank(&name, 40).unwrap_err().to_string();
        assert!(e.len() < 500, "{}", e.len());
    }
}
